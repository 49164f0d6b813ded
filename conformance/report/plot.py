"""The end-to-end picture: how far each backend's parameters are from the reference, epoch by epoch."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..results import CheckResult

_EPOCH = re.compile(r"^epoch(\d+)/")
FLOOR = 1e-12  # bit-identical epochs are drawn on this line of the log axis


def divergence_series(results: list[CheckResult], check_id: str = "trajectory.mlp_e2e",
                      case_id: str = "upstream-example") -> dict[str, np.ndarray]:
    """``{backend: max abs parameter difference per epoch}`` from the trajectory check's outputs."""
    series = {}
    for r in results:
        if r.check_id != check_id or r.status == "skip":
            continue
        case = next((c for c in r.cases if c.case_id == case_id), None)
        if case is None or not case.outputs:
            continue
        per_epoch: dict[int, float] = {}
        for o in case.outputs:
            m = _EPOCH.match(o.name)
            if m:
                e = int(m.group(1))
                per_epoch[e] = max(per_epoch.get(e, 0.0), float(o.max_abs))
        if per_epoch:
            series[r.backend] = np.array([per_epoch[e] for e in sorted(per_epoch)])
    return series


def plot_divergence(series: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Write a PNG (Agg backend): one line per backend or scenario, log axis, zero drawn at FLOOR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    for i, (label, values) in enumerate(series.items()):
        y = np.maximum(np.asarray(values, np.float64), FLOOR)
        exact = bool(np.all(np.asarray(values) == 0))
        ax.plot(np.arange(len(y)), y, marker="os^Dvx<>"[i % 8], linestyle="--" if exact else "-",
                label=label + (" (bit-identical)" if exact else ""))
    ax.set_yscale("log")
    ax.axhline(FLOOR, color="grey", linewidth=0.5)
    ax.set_xlabel("epoch (0 = initial parameters)")
    ax.set_ylabel("max |param - reference param|")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
