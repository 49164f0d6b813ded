"""Certify third-party PyTorch EGGROLL ports: the ``certify-ports`` use case over the harness's engine.

``catalog`` pins the published ports and installs them; ``certification`` runs every check on a
port (values on routed draws where the adapter offers them, see ``routed``) and reduces each
failing check to its smallest reproducing case (``repro``); ``report`` writes
``reports/ports/<distribution>-<version>.md`` and ``.json``.
"""
