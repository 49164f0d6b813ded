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

What evolves how (:mod:`.es_classes`): ``nn.Linear`` weights get low-rank noise (``MM_PARAM``),
``nn.Embedding`` weights none (``EMB_PARAM``), everything else full-rank noise (``PARAM``);
``es_classes={path: class}`` overrides any of them, ``EXCLUDED`` included.

Keys (:mod:`.param_tree`): one per parameter, from ``simple_es_tree_key`` on the parameters as a
nested dict (``"0.weight"`` -> ``params["0"]["weight"]``), i.e. in ``jax.tree.flatten`` order of
that dict. A module whose paths spell the same dict as a functional/JAX model's ``params`` gets
the same keys, noise and updates from the same ES key.

Population forward (:mod:`.population`): all members in one ``torch.func.vmap`` over the
unchanged module; ``nn.Linear`` computes ``x @ W.T + (x @ B_i) @ A_i.T + b_i`` through the rank
dimension, never forming a perturbed weight matrix.

Update (:mod:`.trainer`): the functional layer's ``convert_fitnesses`` and ``do_updates``, so an
nn run and a functional run with the same params, keys and fitnesses update identically. Works on
CPU and CUDA, for float32, bfloat16, float16 and float64 parameters.
"""
from eggroll_torch.models.common import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM

from .es_classes import default_es_classes, resolve_es_classes
from .param_tree import assign_keys, flatten_paths, nest
from .population import Population
from .trainer import EggrollTrainer

__all__ = [
    "EMB_PARAM",
    "EXCLUDED",
    "EggrollTrainer",
    "MM_PARAM",
    "PARAM",
    "Population",
    "assign_keys",
    "default_es_classes",
    "flatten_paths",
    "nest",
    "resolve_es_classes",
]
