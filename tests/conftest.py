"""The test tree's one device rule.

A test that needs a GPU carries ``@pytest.mark.cuda`` and nothing else. On a machine without
CUDA those tests are deselected at collection (counted as "deselected", listed by ``-m cuda
--collect-only``), so that a CPU run's skips are only what is genuinely missing there; on a GPU
machine ``pytest -m cuda`` runs exactly them.
"""
from __future__ import annotations

import torch


def pytest_report_header(config):
    if not torch.cuda.is_available():
        return "cuda: no device; tests marked 'cuda' are deselected"
    return f"cuda: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} device(s))"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    deselected = [item for item in items if item.get_closest_marker("cuda") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("cuda") is None]
