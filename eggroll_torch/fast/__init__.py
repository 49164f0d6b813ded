"""Bulk kernels under :class:`eggroll_torch.nn.EggrollTrainer`'s engine: the same noise as the
functional layer, computed for every antithetic pair at once.

- :mod:`.noise`: every antithetic pair's draws for a group of parameters in one call (a fused
  threefry + normal Triton kernel on CUDA, a compiled C loop on the CPU), bit for bit
  :func:`eggroll_torch.random.normal`.
- :mod:`.cpu_linear`: the shared matmul of the population forward through oneDNN on the CPU.
- :mod:`.graphs`: a generation replayed as one CUDA graph.

Triton and a C compiler are optional; without them everything runs in torch ops, with the same
noise bits.
"""
from .graphs import GraphedStep
from .noise import draw_pair_normals, pair_keys, true_epoch, use_kernel

__all__ = ["GraphedStep", "draw_pair_normals", "pair_keys", "true_epoch", "use_kernel"]
