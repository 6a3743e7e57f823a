"""Scores and statistics: numpy/scipy only, no torch, no other anapart layer."""
