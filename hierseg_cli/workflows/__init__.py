"""Workflows: library functions that wire hierseg, data_prep and ensembles together (CLI layer only)."""
