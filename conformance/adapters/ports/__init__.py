"""Adapters for third-party PyTorch EGGROLL ports published on PyPI, and their certification.

One module per port (``torcheggroll``, ``eggroll_trainer``, ``eggroll_es``), each documenting how
every protocol operation reaches the port and what cannot be reached. ``catalog`` pins the
versions ``make certify-ports`` installs; ``_reference_draws`` / ``routed`` feed the reference's
Gaussian draws to a port's own generator; ``repro`` and ``report`` write ``reports/ports/``.
"""
