"""Runnable reproductions of upstream's examples, importable without side effects."""
