"""What a ``run`` reports: terminal progress and summary, COMPATIBILITY.md, conformance.json, junit.xml,
the divergence picture, and the claims document evaluated against the reference (``claims``).

:mod:`.outcome` holds a run's outcome and writes its report files.
"""
