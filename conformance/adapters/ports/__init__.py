"""Adapters for third-party PyTorch EGGROLL ports published on PyPI.

One module per port (``torcheggroll``, ``eggroll_trainer``, ``eggroll_es``), each documenting how
every protocol operation reaches the port and what cannot be reached. ``_reference_draws`` feeds
the reference's Gaussian draws to a port's own generator; ``_torch_trees`` converts parameter
trees. Which versions get installed and how a port is certified is :mod:`conformance.certify`.
"""
