"""The parity harness: two use cases, ``run`` and ``certify-ports``, over one engine.

The engine, lowest layer first: the shared vocabulary (``spec``, ``trees``, ``inputs``,
``tolerances``, ``results``, ``golden``, ``environment``, ...); ``adapters`` (one per backend,
protocol in :mod:`conformance.adapters.base`); ``checks`` (registry and selection); ``reference``,
``runner`` and ``gate``; ``report`` (terminal, ``COMPATIBILITY.md``, ``conformance.json``,
``junit.xml``, the claims evaluation). ``certify`` is what only port certification needs (catalog,
case minimiser, port report); ``commands`` holds one module per CLI command, and ``run`` and
``certify-ports`` each resolve, run, gate and report. A module imports only from its layer or
lower ones (``tests/conformance/test_conformance_layering.py``).

``python -m conformance run`` is ``make conformance``; see ``docs/conformance.md``.
"""
