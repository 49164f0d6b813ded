"""EGGROLL evolution strategies in PyTorch, giving the JAX reference's numbers."""
