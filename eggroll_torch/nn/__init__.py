"""EGGROLL for any ``torch.nn.Module``: a population forward in one batched call and an ES trainer.

Usage::

    import torch
    from torch import nn
    from eggroll_torch.nn import EggrollTrainer, EXCLUDED

    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    trainer = EggrollTrainer(model, sigma=0.2, lr=0.03, population_size=64, rank=8,
                             solver="adamw", solver_kwargs={"b1": 0.9, "b2": 0.999}, seed=0)

    def fitness(pop):                      # pop: the epoch's 64 perturbed models
        x = torch.randn(pop.size, 3)       # member i gets x[i]; pop(x, in_dims=None) shares x
        return -((pop(x) - 2) ** 2)[:, 0]  # one raw score per member, higher is better

    for _ in range(10):
        metrics = trainer.step(fitness)    # epoch, fitness_mean/max/min, update_norm
    torch.save(trainer.state_dict(), "es.pt")  # resume: trainer.load_state_dict(torch.load("es.pt"))

What evolves how (:mod:`.es_classes`, whose table is the full list): every weight matrix a layer
multiplies by is ``MM_PARAM`` and gets EGGROLL's low-rank noise. That is the ``weight`` of
``nn.Linear`` (and its subclasses, e.g. ``nn.MultiheadAttention``'s ``out_proj``),
``nn.MultiheadAttention``'s ``in_proj_weight`` / ``q/k/v_proj_weight``, the ``weight_ih*``,
``weight_hh*`` and ``weight_hr*`` matrices of ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` and their
cells, and the ``weight`` of ``transformers``' GPT-2 ``Conv1D`` (stored ``(in, out)``).
``nn.Embedding`` and ``nn.EmbeddingBag`` weights get no noise and a zero update (``EMB_PARAM``);
everything else (biases, norms, conv kernels, raw ``nn.Parameter``) gets full-rank noise
(``PARAM``). ``es_classes={path: class}`` overrides any of them, ``EXCLUDED`` included.

Keys (:mod:`.param_tree`): one per parameter, from ``simple_es_tree_key`` on the parameters as a
nested dict (``"0.weight"`` -> ``params["0"]["weight"]``), i.e. in ``jax.tree.flatten`` order of
that dict. A module whose paths spell the same dict as a functional/JAX model's ``params`` gets
the same keys, noise and updates from the same ES key.

Population forward (:mod:`.population`): all members in one ``torch.func.vmap`` over the
unchanged module, never forming a perturbed weight matrix: a product with an ``MM_PARAM``
matrix is routed (:mod:`.routing`) through the rank dimension, ``x @ W.T + (x @ B_i) @ A_i.T``
where the layer calls ``F.linear`` (``nn.Linear``, and the attention and recurrent kernels,
which run as routed ``linear`` calls) and ``x @ W + (x @ A_i) @ B_i.T`` where it multiplies by
the matrix from the right (``Conv1D``).

Update (:mod:`.trainer`): for EGGROLL (``noiser="eggroll"`` or ``"reeggroll"``) with an even
population the pair engine (:mod:`.engine`) draws the functional layer's noise bit for bit and
agrees with its ``do_updates`` within the ``reduction`` tolerance (summation order); every other
noiser, and an odd population, calls the functional layer's ``convert_fitnesses`` and
``do_updates``, so it updates bit-identically to a functional run with the same params, keys and
fitnesses. Works on CPU and CUDA, for float32,
bfloat16, float16 and float64 parameters.

Functional models (:mod:`eggroll_torch.models`: upstream's MLP, RL policies, RWKV-7) train as
they are through :class:`FunctionalModule`, which registers their params tree as parameters and
runs their own population forward; its ES classes and keys are the model's ``es_map`` and
``simple_es_tree_key`` with its ``scan_map`` (see :mod:`.functional_module`)::

    from eggroll_torch.models.llm import rwkv7
    model = FunctionalModule.from_torch(rwkv7.ScanRWKV, torch.load("rwkv7.pth"), dtype=torch.float32)
    trainer = EggrollTrainer(model, sigma=1e-3, lr=1e-4, population_size=8, rank=4, seed=0)
    # pop(tokens (8, T), state (8, L, 2 + S, C)) -> (logits (8, T, V), state)

The ES class constants ``PARAM`` (0), ``MM_PARAM`` (1), ``EMB_PARAM`` (2) and ``EXCLUDED`` (3)
are upstream's ``es_map`` values, re-exported from :mod:`eggroll_torch.models.common`.
"""
from eggroll_torch.models.common import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM

from .es_classes import default_es_classes, resolve_es_classes
from .functional_module import FunctionalModule, FunctionalPopulation
from .param_tree import assign_keys, flatten_paths, nest
from .population import Population
from .trainer import EggrollTrainer

__all__ = [
    "EMB_PARAM",
    "EXCLUDED",
    "EggrollTrainer",
    "FunctionalModule",
    "FunctionalPopulation",
    "MM_PARAM",
    "PARAM",
    "Population",
    "assign_keys",
    "default_es_classes",
    "flatten_paths",
    "nest",
    "resolve_es_classes",
]
