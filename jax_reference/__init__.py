"""Our JAX implementation of upstream HyperscaleES's core behaviour (commit b77f7d6)."""
