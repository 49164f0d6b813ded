"""Subcommands of ``python -m conformance``; one module per command (see :mod:`conformance.cli`)."""
