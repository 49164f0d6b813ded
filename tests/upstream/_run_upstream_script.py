"""Run upstream's ``tests/end_to_end_test.py`` in a process of its own and save what it produced.

Usage: ``python _run_upstream_script.py SRC SCRIPT OUT_DIR``. Writes ``OUT_DIR/stdout.txt``
(the script's printed statistics) and ``OUT_DIR/params.npz`` (its final params, keyed by
``jax.tree_util.keystr`` paths). A process of its own because the script switches on JAX's
persistent compilation cache and sets XLA environment variables, process-wide.
"""
import contextlib
import importlib.util
import io
import os
import runpy
import sys
import types
from pathlib import Path

from conformance.adapters.upstream import load_upstream


def main(src, script, out_dir):
    out_dir = Path(out_dir)
    if importlib.util.find_spec("huggingface_hub") is None:
        # The script imports huggingface_hub only for HF_HOME, its compilation-cache location.
        hub = types.ModuleType("huggingface_hub")
        hub.constants = types.ModuleType("huggingface_hub.constants")
        hub.constants.HF_HOME = str(out_dir / "hf_home")
        sys.modules.update({"huggingface_hub": hub, "huggingface_hub.constants": hub.constants})
    load_upstream(src)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        script_globals = runpy.run_path(script, run_name="upstream_end_to_end")
    import jax
    import numpy as np

    leaves = jax.tree_util.tree_flatten_with_path(script_globals["params"])[0]
    np.savez(out_dir / "params.npz", **{jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves})
    (out_dir / "stdout.txt").write_text(stdout.getvalue())


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main(*sys.argv[1:])
