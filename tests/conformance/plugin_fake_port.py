"""A test-only "port": the eggroll_torch adapter with ONE behaviour changed, loaded as a plug-in.

``Ddof1Port`` shapes fitnesses with torch's default sample variance (``ddof=1``) instead of
upstream's population variance, the most common bug of published ports. Everything else is
eggroll_torch unchanged, so exactly the checks about the variance should fail.
"""
from __future__ import annotations

import numpy as np
import torch

from conformance.adapters import base
from conformance.adapters.eggroll_torch import EggrollTorchAdapter
from conformance.spec import VARIANCE_EPS


class Ddof1Port(EggrollTorchAdapter):
    """``eggroll_torch`` whose global z-score divides by ``sqrt(var(raw, ddof=1) + VARIANCE_EPS)``."""

    def __init__(self):
        super().__init__("cpu")
        self.name = "fake-ddof1-port"

    def info(self) -> base.BackendInfo:
        return base.BackendInfo(self.name, "0.0.1", "cpu", {"torch": torch.__version__}, "test-only fake port")

    def convert_fitnesses(self, config, raw):
        if config.group_size:
            return super().convert_fitnesses(config, raw)
        r = torch.from_numpy(np.asarray(raw, np.float32).copy())
        return ((r - r.mean()) / torch.sqrt(r.var() + VARIANCE_EPS)).numpy()
