"""Evaluation: quality sweeps, metrics and plots."""
