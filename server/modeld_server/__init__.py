"""modeld daemon."""
