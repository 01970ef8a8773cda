"""Command-line handlers of run.py (the operator surface)."""
