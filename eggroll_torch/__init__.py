"""EGGROLL evolution strategies in PyTorch, giving the JAX reference's numbers.

Functional layer (mirrors upstream HyperscaleES name for name, torch tensors for jax arrays):
``eggroll_torch.noiser`` (the six noisers and ``all_noisers``), ``eggroll_torch.models``
(``base_model``, ``common``), ``eggroll_torch.optim`` (optax's optimizers), ``eggroll_torch.tree``
(pytrees in ``jax.tree`` order), ``eggroll_torch.random`` (JAX's PRNG) and
``eggroll_torch.validation`` (shared input checks). ``eggroll_torch.nn`` trains any ``nn.Module``.
"""
