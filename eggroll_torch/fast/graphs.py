"""Replaying a whole ES generation as one CUDA graph.

A generation has static shapes, so after warm-up its hundreds of kernel launches can be
recorded once and replayed with a single call. Everything the step reads or writes must live
in tensors allocated before capture (weights updated in place, an epoch counter on the device
that the step itself advances); the step may not synchronise with the host.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


class GraphedStep:
    """``step()`` recorded into a CUDA graph; calling the object replays it and returns what the
    captured call returned (the same tensors every time, overwritten by each replay).

    Construction runs ``step`` ``warmup`` times on a side stream (their effects on tensors, e.g.
    parameter updates, happen), calls ``after_warmup()`` if given (e.g. to undo those effects),
    then records one more call without executing its kernels: without ``after_warmup`` the
    tensors have advanced ``warmup`` steps after construction. On a non-CUDA device, or with
    ``enabled=False``, calls run ``step`` directly.
    """

    def __init__(self, step: Callable[[], object], device, *, warmup: int = 2, enabled: bool = True,
                 after_warmup: Callable[[], None] | None = None):
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"warmup must be an int >= 1 (kernels compile before capture); got {warmup!r}")
        self._step = step
        self._graph = None
        self._result = None
        if not enabled or torch.device(device).type != "cuda":
            return
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step()
        torch.cuda.current_stream(device).wait_stream(side)
        if after_warmup is not None:
            after_warmup()
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._result = step()

    @property
    def graphed(self) -> bool:
        """True when calls replay a CUDA graph."""
        return self._graph is not None

    def __call__(self):
        if self._graph is None:
            return self._step()
        self._graph.replay()
        return self._result
