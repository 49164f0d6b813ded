"""Runnable examples of the functional layer."""
