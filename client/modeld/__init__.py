"""modeld client."""
