"""The parity harness: checks, adapters, golden vectors, reports and the CI gate.

``python -m conformance run`` is ``make conformance``; see ``docs/conformance.md`` and, for
writing an adapter for a port, :mod:`conformance.adapters.base`.
"""
