"""Pieces of ``modelctl`` (the entry point is ``modeld.cli``); imported only by the CLI."""
