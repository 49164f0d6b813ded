"""Each port's trainer-level verdicts set against the verdicts of its hand-written adapter.

A published port is certified twice (``certify-ports``): by a hand-written adapter reaching into
its internals, which runs the functional checks (:mod:`conformance.checks`, report
``reports/ports/<port>-<version>.json``), and by a :class:`~conformance.adapters.trainer.TrainerAdapter`
using only its public trainer, which runs the trainer checks (:mod:`conformance.trainer_checks`,
report ``<port>-trainer-level-<version>.json``). The ids differ and so does the granularity: one
trainer check observes several behaviours at once (``update.observed_noise`` is the port's own
fitness shaping and its update formula together), and some functional checks test what no
trainer can be asked to do.

:data:`CONCORDANCE` declares, for every trainer check, the functional checks whose behaviour it
observes, each restricted to the cases whose inputs the trainer check's configuration exercises
(on the probe: float32 ``16 x 16`` matrices at rank 1 or 4, a ``16``-vector bias, one full
population ``0 .. N - 1`` in thread order, ``noise_reuse=1`` unless the check varies it, raw
fitnesses drawn from a normal).
Two kinds of evidence: ``observes``, the behaviour the trainer check exists to test (without it
the trainer check cannot run either: group shaping for ``normalization.observed_group``), and
``through``, behaviours its observation goes through (the update formula under the group
shaping). The expected trainer verdict is:

1. ``fail`` when an ``observes`` check fails;
2. ``not run`` when an ``observes`` check did not run;
3. ``fail`` when a ``through`` check fails;
4. ``pass`` otherwise (a ``through`` check that did not run is named in the evidence).

A functional check of a port with its own RNG is judged by its own-RNG laws where the report has
them (``laws``): its values compare the reference's draws routed into the port's generator, which
no trainer sees, and a values-only failure is another check's finding. :data:`NO_COUNTERPART`
names every functional check no trainer check observes, and why.

A disagreement is ``explained`` only where :data:`EXPLAINED` gives the port, the two verdicts and
the reason (the port does something one adapter cannot reach); any other is ``disagree``.
:data:`CAUSES` notes agreements whose two sides fail for different reasons.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

TRAINER_SUFFIX = "-trainer-level"
# Characters of a check's message quoted as a reason.
_CUT = 120


@dataclass(frozen=True)
class Evidence:
    """A functional check, restricted to the case ids ``cases`` (``None``: all of them)."""

    check: str
    cases: tuple | None = None

    def label(self) -> str:
        return f"`{self.check}`" + (f" ({', '.join(self.cases)})" if self.cases else "")


@dataclass(frozen=True)
class Concordance:
    """What one trainer check observes in functional checks' terms (see the module docstring)."""

    observes: tuple
    through: tuple = ()
    why: str = ""


def _e(check: str, *cases: str) -> Evidence:
    return Evidence(check, cases or None)


# The shaping a trainer applies to raw fitnesses drawn from a normal (spread 1, N = 64).
_ZSCORE = (_e("normalization.zscore", "normal-n8", "normal-n7", "normal-n64"), _e("normalization.population_variance"))
# The rest of upstream's step lr * sqrt(N) * mean(f * E) with plain SGD.
_STEP = (_e("update.scale_sqrt_n"), _e("update.sigma_scaling"))
# Its sign (ascent) and the plain SGD step that applies it.
_SGD = (_e("update.ascent_sign"), _e("optimizer.default_sgd"))
# A full population in thread order, as every trainer evaluates it.
_PAIRS = (_e("signs.antithetic_pair", "full-n8", "full-n16", "full-n8-reuse1-epoch3"), _e("signs.alternation", "pairs"))

CONCORDANCE: dict[str, Concordance] = {
    "signs.antithetic_exact": Concordance(
        _PAIRS, (_e("noise.bias_perturbed", "bias7"),),
        "members 2p and 2p+1 share factors with opposite signs; the bias must be perturbed at all"),
    "noise.member_rank": Concordance(
        (_e("noise.lora_factors", "4x3-r1", "3x5-r2", "1x7-r1", "16x3-r1", "8x8-r1", "8x8-r8"),),
        why="r columns per factor; only float32 cases with rank <= min(a, b), as the probe's 16 x 16 at rank 1 and 4 "
            "(clipping a larger rank is noise.rank_not_clipped's)"),
    "noise.lowrank_scale": Concordance(
        (_e("noise.rank_scaling", "6x5-r1", "6x5-r4"),),
        why="sigma / sqrt(rank) on A at the ranks the probe uses (rank 16 on 6 x 5 is clipping)"),
    "noise.full_rank_normal": Concordance(
        (_e("noise.full_rank", "5-f32"),), (_e("noise.bias_perturbed", "bias7"),),
        "a float32 vector's noise is sigma * normal (the probe's only non-matrix leaf is a 1-D bias)"),
    "noise.independence": Concordance(
        (*_PAIRS, _e("noise.reuse_blocks", "k1"), _e("keys.tree_order")),
        why="even members are distinct pairs only if pairs are (2p, 2p+1); consecutive epochs at noise_reuse=1 "
            "redraw; every leaf has its own key"),
    "noise.reuse_epochs": Concordance(
        (_e("noise.reuse_zero_freezes"), _e("noise.reuse_blocks", "k2")),
        why="its cases are noise_reuse 0 and 2"),
    "noise.seed_determinism": Concordance(
        (_e("keys.tree_order"),),
        why="upstream's noise is a function of the one base key, split over the leaves"),
    "normalization.observed_group": Concordance(
        (_e("normalization.group", "normal-n32-g8"), _e("normalization.group_global_std", "spread-n32-g8")),
        (_e("update.lowrank"), *_STEP, *_SGD),
        "group_size 8 over normal raw fitnesses, seen through the matrices' SGD step"),
    "optimizer.observed_adam": Concordance(
        (_e("optimizer.adam", "defaults"), _e("optimizer.adamw"),
         _e("optimizer.noiser_solver", "adamw-in-noiser", "adam-in-noiser")),
        (*_ZSCORE, _e("update.lowrank"), _e("update.full"), *_STEP),
        "adam and adamw inside the update, on upstream's gradient of the shaped fitnesses"),
    "trajectory.equivalence": Concordance(
        (_e("trajectory.mlp_e2e", "upstream-example"),),
        why="upstream's MLP example; the trainer check tests statistical equivalence, so only a failure of the "
            "exact trajectory that also moves the mean score by the margin makes it fail"),
    "update.observed_noise": Concordance(
        (_e("update.lowrank"), *_ZSCORE, _e("normalization.eps_inside_sqrt", "std0.001-n32"), *_STEP), _SGD,
        "the trainer shapes raw fitnesses itself: z-score (its small_spread case puts the eps where only "
        "sqrt(var + eps) passes) composed with the matrix update"),
    "update.observed_vector": Concordance(
        (_e("update.full"), *_ZSCORE, *_STEP), _SGD,
        "z-score (spread 1: the eps is not exercised) composed with the non-matrix update"),
}

# Functional checks no trainer check observes, and why.
NO_COUNTERPART: dict[str, str] = {
    **{f"api.{name}": "upstream's functional API (init_noiser, do_updates, iterinfo, keyword names); a trainer has "
                      "none" for name in ("init_noiser_state", "do_updates_contract", "one_member_call",
                                          "keyword_names")},
    "models.rl_policy": "one of upstream's models (models.rl's actor-critic), not the ES machinery a trainer runs on "
                        "any module",
    **{f"models.rwkv7_{name}": "one of upstream's models (RWKV-7 through its functional forward and maps); "
                               "EggrollTrainer runs it as a FunctionalModule, bit-identical to the functional "
                               "layer (tests/nn/test_functional_module.py), not through a trainer check"
       for name in ("forward", "noisy_forward", "state", "es_step")},
    "models.qrwkv6_forward": "one of upstream's models (QRWKV6 through its functional forward); no trainer check runs "
                             "a language model",
    **{f"llm.{name}": "upstream's LLM fine-tuning loop (eggroll_torch.llm), which drives the functional noiser and "
                      "model rather than a trainer; no trainer check generates text"
       for name in ("sampling", "generation", "task_fitness", "es_epoch")},
    "forward.do_mm": "values of the reference's draws routed into the port; a trainer shows only the port's own "
                     "draws (every trainer check observes what the forward applies, but not against a value)",
    "forward.do_Tmm": "a transposed matmul; the harness's modules are nn.Linear (x @ W.T) only",
    "forward.noisy_standard": "values of the reference's draws routed into the port; a trainer shows only its own",
    "forward.no_noise_eval": "evaluation without noise (iterinfo=None); the trainer protocol has no evaluation call",
    "keys.scan_split": "scan axes (stacked leaves); the probe has none",
    "noise.emb_excluded": "EMB_PARAM and EXCLUDED leaves; a TrainerConfig has no es_map",
    "noise.freeze_nonlora": "a TrainerConfig has no freeze_nonlora",
    "noise.lora_slices": "which slice of one draw is A and which B: values of JAX's draws",
    "noise.rank_not_clipped": "rank > min(a, b): a probe's perturbation has rank min(a, b) and entry variance "
                              "sigma**2 whether the port clips the rank or not",
    "noise.thread_halving": "non-contiguous and offset thread ids (1000, 77); a trainer evaluates 0 .. N - 1 "
                            "(whose pairs are signs.antithetic_pair's)",
    **{f"noiser.{name}": "another noiser; a TrainerConfig is EGGROLL's only"
       for name in ("open_es", "eggrollbs", "alteggroll", "sparse", "noop", "reeggroll")},
    "normalization.constant_fitness": "expressible but not exercised: no trainer check hands out equal raw "
                                      "fitnesses (probes.raw_fitnesses draws distinct normals)",
    "normalization.subnormal_scores": "not exercised: raw fitnesses are normals of spread 1 or 1e-3, never "
                                      "subnormal",
    "normalization.group_size_multiple": "not exercised: every trainer population (64) is a multiple of its "
                                         "group_size (8)",
    "optimizer.sgd": "sgd with momentum or nesterov: no trainer check passes sgd options (plain sgd inside the "
                     "update is optimizer.default_sgd's)",
    "optimizer.adamw_defaults": "adamw's default weight_decay: optimizer.observed_adam passes it explicitly",
    "update.thread_sets": "permuted members, subsets with broken pairs, mixed epochs; a trainer evaluates one "
                          "whole population in order",
    "update.mixed_tree": "EMB_PARAM and EXCLUDED leaves; a TrainerConfig has no es_map",
    "update.low_precision": "bfloat16 and float16 parameters; the harness builds float32 modules",
    "update.scan_map": "scan axes (stacked leaves); the probe has none",
    "update.batched_equals_plain": "use_batched_update; a TrainerConfig has no such option",
}


@dataclass(frozen=True)
class Explained:
    """A disagreement of port ``port`` on one trainer check that is genuine: ``trainer`` against
    ``expected``, for ``reason``."""

    trainer: str
    expected: str
    reason: str


_ES_NOISE = ("no hand-written noise check can run on eggroll-es (one generator drawn in call order: no draw to route "
             "the reference's into; (A * B).sum(-1): no factors to return); the trainer observes what the port applies")

# (port, trainer check) -> the disagreement, and why it is genuine.
EXPLAINED: dict[tuple[str, str], Explained] = {
    ("eggroll-es", "signs.antithetic_exact"): Explained("pass", "not run", _ES_NOISE),
    ("eggroll-es", "noise.independence"): Explained("pass", "not run", _ES_NOISE),
    ("eggroll-es", "noise.member_rank"): Explained(
        "fail", "not run", _ES_NOISE + ": (A * B).sum(-1) over (numel, r) factors is of full rank"),
    ("eggroll-es", "noise.lowrank_scale"): Explained(
        "fail", "not run", _ES_NOISE + ": entries have variance sigma**2 / r"),
    ("eggroll-es", "noise.full_rank_normal"): Explained(
        "fail", "not run", _ES_NOISE + ": a bias's noise, a sum of r products of normals, is not normal"),
    ("eggroll-es", "noise.reuse_epochs"): Explained(
        "fail", "not run", _ES_NOISE + ": fresh noise every generation whatever noise_reuse asks"),
    ("eggroll-es", "noise.seed_determinism"): Explained(
        "pass", "not run", "the hand-written adapter injects or routes the reference's keyed noise, so no "
                           "functional check sees the port's seed; the trainer sees EggrollConfig.seed at work"),
    ("eggroll-trainer", "noise.member_rank"): Explained(
        "fail", "pass", "step() evaluates member k at base + E_0 + ... + E_k (it copies each member's perturbed "
                        "parameters into the module and perturbs the next from them), so odd members run "
                        "unperturbed; the hand-written adapter calls _apply_perturbations on a fresh module per "
                        "member and never sees the accumulation"),
    ("eggroll-trainer", "noise.seed_determinism"): Explained(
        "fail", "not run", "the port reseeds its generator with true_epoch * 1e6 + true_thread before every draw, "
                           "so seed= changes nothing; the hand-written adapter routes the reference's draws per "
                           "(epoch, thread) and has no seed to vary"),
}

# (port, trainer check) -> why both sides fail, where their causes differ.
CAUSES: dict[tuple[str, str], str] = {
    ("eggroll-trainer", "signs.antithetic_exact"): (
        "partly different causes: at noise_reuse=0 both sides fail the same way (the port draws every thread "
        "separately with sign +1); at noise_reuse=1 the hand-written case passes (the port's noise is antithetic) "
        "while the trainer check fails, since step() accumulates the perturbations (member 2p+1 runs at "
        "base + E_2p - E_2p)"),
    ("eggroll-trainer", "noise.independence"): (
        "different causes: the hand-written pair laws fail at noise_reuse=0; the trainer check fails on layers "
        "(every parameter reseeds with the same true_epoch * 1e6 + true_thread, so equal shapes get equal noise)"),
    ("eggroll-trainer", "update.observed_noise"): (
        "the shaping (std with ddof=1, plus 1e-8) fails on both sides; step()'s accumulated perturbations would "
        "fail the trainer check on their own"),
    ("eggroll-trainer", "update.observed_vector"): (
        "the shaping fails on both sides; step()'s accumulated perturbations would fail the trainer check on "
        "their own"),
    ("eggroll-trainer", "normalization.observed_group"): (
        "per-group std fails on both sides; step()'s accumulated perturbations would fail the trainer check on "
        "their own"),
}


@dataclass
class Verdict:
    """One trainer check on one port: its verdict, the verdict expected from the functional checks it
    observes, whether they agree (``agree``, ``explained`` or ``disagree``), why a side did not run
    or why they differ, and the functional verdicts the expectation rests on."""

    check: str
    trainer: str
    expected: str
    agreement: str
    reason: str
    evidence: str


@dataclass
class PortVerdicts:
    """One port's two reports (file names) and the verdict of every trainer check."""

    port: str
    version: str
    trainer_report: str
    handwritten_report: str
    verdicts: list = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def _trainer_verdict(row: dict | None) -> tuple[str, str]:
    if row is None:
        return "not run", "not in the trainer-level report"
    status = {"skip": "not run"}.get(row["status"], row["status"])
    if status == "pass":
        return status, ""
    messages = [m for c in row["cases"] if c["status"] == row["status"] for m in c.get("messages", [])]
    return status, (row["note"] if status == "not run" else messages[0][:_CUT] if messages else "")


def _evidence_verdict(results: dict, evidence: Evidence) -> tuple[str, str]:
    """``(pass | fail | not run, why)`` of one functional check on the selected cases, by its
    own-RNG laws where the report has them."""
    row = results.get(evidence.check)
    if row is None:
        return "not run", f"{evidence.label()} is not in the report"
    judged = row.get("laws") or row
    cases = [c for c in judged["cases"] if evidence.cases is None or c["case_id"] in evidence.cases]
    statuses = {c["status"] for c in cases}
    if "fail" in statuses:
        first = next(m for c in cases if c["status"] == "fail" for m in c.get("messages", []) or [""])
        return "fail", f"{evidence.label()}: {first[:_CUT]}"
    if "error" in statuses:
        first = next(m for c in cases if c["status"] == "error" for m in c.get("messages", []) or [""])
        return "not run", f"{evidence.label()} crashed: {first[:_CUT]}"
    if "pass" in statuses:
        return "pass", ""
    why = next((m for c in cases for m in c.get("messages", [])), judged.get("note") or row.get("note") or "")
    return "not run", f"{evidence.label()} not run: {why[:_CUT]}"


def expected_verdict(concordance: Concordance, results: dict) -> tuple[str, str, str]:
    """``(verdict, why, evidence)`` the functional ``results`` (``{check id: report row}``) predict
    for a trainer check with ``concordance`` (the rule of the module docstring)."""
    observes = [(e, *_evidence_verdict(results, e)) for e in concordance.observes]
    through = [(e, *_evidence_verdict(results, e)) for e in concordance.through]
    evidence = "; ".join(f"{e.label()} {v}" for e, v, _ in observes + through)
    for group in (observes, through):
        failing = [(e, why) for e, v, why in group if v == "fail"]
        if failing:
            names = ", ".join(f"`{e.check}`" for e, _ in failing)
            return "fail", f"{names} fail; {failing[0][1]}", evidence
        unrun = [why for _, v, why in group if v == "not run"]
        if unrun and group is observes:
            return "not run", unrun[0], evidence
    return "pass", "", evidence


def compare(trainer_report: dict, handwritten_report: dict) -> list[Verdict]:
    """Every trainer check of :data:`CONCORDANCE` on one port: its verdict in ``trainer_report``
    against the verdict ``handwritten_report`` predicts (both certification JSON documents)."""
    port = handwritten_report["port"]["name"]
    trainer_rows = {r["check_id"]: r for r in trainer_report["results"]}
    functional = {r["check_id"]: r for r in handwritten_report["results"]}
    out = []
    for check, concordance in CONCORDANCE.items():
        trainer, trainer_why = _trainer_verdict(trainer_rows.get(check))
        expected, expected_why, evidence = expected_verdict(concordance, functional)
        both = "; ".join(w for w in (f"trainer-level: {trainer_why}" if trainer_why else "",
                                     f"hand-written: {expected_why}" if expected_why else "") if w)
        explained = EXPLAINED.get((port, check))
        if trainer == expected:
            agreement = "agree"
            reason = CAUSES.get((port, check)) or (f"hand-written: {expected_why}" if expected == "fail" else both)
        elif explained is not None and (explained.trainer, explained.expected) == (trainer, expected):
            agreement, reason = "explained", explained.reason
        else:
            agreement, reason = "disagree", both
        out.append(Verdict(check, trainer, expected, agreement, reason, evidence))
    return out


def report_pairs(ports_dir: Path) -> list[tuple[Path, Path]]:
    """``(trainer-level report, hand-written report)`` of every port in ``ports_dir`` certified
    both ways, with the same version (the newest file of each when there are several)."""
    docs = {}
    for path in sorted(Path(ports_dir).glob("*.json"), key=lambda p: p.stat().st_mtime):
        doc = json.loads(path.read_text())
        if doc.get("format") == "eggroll-port-certification":
            docs[(doc["port"]["name"], doc["port"]["version"], doc["port"].get("protocol") or "")] = path
    pairs = []
    for (name, version, protocol), path in sorted(docs.items()):
        if protocol == "trainer" and name.endswith(TRAINER_SUFFIX):
            functional = docs.get((name.removesuffix(TRAINER_SUFFIX), version, "functional"))
            if functional is not None:
                pairs.append((path, functional))
    return pairs


def evaluate(ports_dir: Path) -> list[PortVerdicts]:
    """:func:`compare` for every port of :func:`report_pairs`."""
    out = []
    for trainer_path, functional_path in report_pairs(ports_dir):
        trainer, functional = (json.loads(p.read_text()) for p in (trainer_path, functional_path))
        port = functional["port"]
        out.append(PortVerdicts(port["name"], port["version"], trainer_path.name, functional_path.name,
                                compare(trainer, functional)))
    return out


ICON = {"pass": "✅ pass", "fail": "❌ fail", "not run": "⏭ not run", "error": "❌ error"}
AGREEMENT = {"agree": "✅ agree", "explained": "⚠️ explained", "disagree": "❌ disagree"}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]


def render(ports: list[PortVerdicts]) -> list[str]:
    """The markdown section "Trainer-level and hand-written verdicts" of ``reports/COMPATIBILITY.md``."""
    lines = ["## Trainer-level and hand-written verdicts", ""]
    if not ports:
        return lines + ["Not measured: no port in `reports/ports/` is certified both ways (`make certify-ports` "
                        "writes `<port>-<version>.json` and `<port>-trainer-level-<version>.json`).", ""]
    lines += ["Each published port is certified by its hand-written adapter (internals, functional checks) and by a "
              "trainer-level adapter of at most 40 lines (public trainer only, trainer checks). A trainer check is "
              "expected to fail when a functional check whose behaviour it observes fails on the cases its "
              "configuration exercises, and not to run when such a check did not run; ports with their own RNG are "
              "judged by their own-RNG laws. A disagreement is explained only where the port does something one "
              "adapter cannot reach (see `conformance/report/verdicts.py`).", ""]
    for p in ports:
        counts = {a: sum(v.agreement == a for v in p.verdicts) for a in AGREEMENT}
        lines += [f"### {p.port} {p.version}", "",
                  f"`ports/{p.trainer_report}` against `ports/{p.handwritten_report}`: "
                  + ", ".join(f"{n} {a}" for a, n in counts.items()) + ".", ""]
        lines += _table(["Trainer check", "Trainer-level", "Expected from hand-written", "Agreement", "Why"],
                        [[f"`{v.check}`", ICON[v.trainer], ICON[v.expected], AGREEMENT[v.agreement], v.reason]
                         for v in p.verdicts])
        lines.append("")
    lines += ["### Concordance", "",
              "The functional checks (and cases) each trainer check observes; \"through\": behaviours its "
              "observation goes through, whose failure fails it.", ""]
    lines += _table(["Trainer check", "Observes", "Through", "Why"],
                    [[f"`{check}`", ", ".join(e.label() for e in c.observes),
                      ", ".join(e.label() for e in c.through) or "-", c.why] for check, c in CONCORDANCE.items()])
    lines += ["", "### Functional checks no trainer check observes", ""]
    lines += _table(["Functional check", "Why"], [[f"`{check}`", why] for check, why in NO_COUNTERPART.items()])
    return lines + [""]
