"""Drift monitoring: a reference profile at training time, live samples compared to it."""
