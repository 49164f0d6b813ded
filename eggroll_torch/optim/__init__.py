"""optax's optimizers for pytrees of torch tensors: same names, signatures, defaults and rounding.

Each optimizer is a :class:`GradientTransformation` ``(init, update)``; ``update`` returns new
tensors and a new state and never modifies its arguments (the ``torch.optim`` wrapper excepted).
Arithmetic follows optax 0.2.8 operation by operation, with Python scalars rounded to each leaf's
dtype first as JAX's weak typing does, so float32/bfloat16/float16 results match optax under XLA
on CPU bit for bit up to the summation order of reductions (``clip_by_global_norm``'s norm) and
the float32 ``pow`` of Adam's bias correction (exact for default betas through step 872).
"""
from ._accumulation import TraceState, trace
from ._adam import ScaleByAdamState, scale_by_adam
from ._adding import add_decayed_weights
from ._clipping import clip_by_global_norm, global_norm
from ._combining import chain
from ._masking import MaskedNode, MaskedState, masked
from ._scaling import scale, scale_by_learning_rate
from .alias import adam, adamw, sgd
from .base import EmptyState, GradientTransformation, identity, init_empty_state
from .solvers import SOLVERS, resolve_solver
from .torch_optimizer import TorchOptimizerState, from_torch_optimizer
from .update import apply_updates

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "MaskedNode",
    "MaskedState",
    "SOLVERS",
    "ScaleByAdamState",
    "TorchOptimizerState",
    "TraceState",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "from_torch_optimizer",
    "global_norm",
    "identity",
    "init_empty_state",
    "masked",
    "resolve_solver",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "sgd",
    "trace",
]
