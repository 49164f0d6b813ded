"""Fast EGGROLL kernels: the same noise as the parity path, computed in bulk.

- :mod:`.noise`: every antithetic pair's draws for a group of parameters in one call (a fused
  threefry + normal Triton kernel on CUDA, a compiled C loop on the CPU), bit for bit
  :func:`eggroll_torch.random.normal`.
- :mod:`.lowrank`: a layer's perturbed forward for the whole population as one shared matmul
  plus rank-``r`` corrections (fused with the activation by a Triton kernel on CUDA; the shared
  matmul through oneDNN on the CPU, :mod:`.cpu_linear`).
- :mod:`.update`: the update as one matmul per layer over the pairs' stacked factors.
- :mod:`.fitness`: upstream's fitness shaping on the device.
- :mod:`.stack`: all of the above for stacks of linear layers (MLPs).
- :mod:`.graphs`: a generation replayed as one CUDA graph.

Triton and a C compiler are optional; without them everything runs in torch ops, with the same
noise bits.
"""
from .fitness import standardize
from .graphs import GraphedStep
from .lowrank import fused_available, lora_scale, member_signs, perturbed_linear, project, split_factors
from .noise import draw_pair_normals, pair_keys, use_kernel
from .stack import LowRankStack, StackNoise, layer_keys
from .update import matrix_sgd_, matrix_step, pair_weights, vector_step

__all__ = [
    "GraphedStep",
    "LowRankStack",
    "StackNoise",
    "draw_pair_normals",
    "fused_available",
    "layer_keys",
    "matrix_sgd_",
    "matrix_step",
    "lora_scale",
    "member_signs",
    "pair_keys",
    "pair_weights",
    "perturbed_linear",
    "project",
    "split_factors",
    "standardize",
    "use_kernel",
    "vector_step",
]
