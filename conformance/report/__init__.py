"""Report writers: terminal progress and summary, COMPATIBILITY.md, conformance.json, junit.xml, plots."""
