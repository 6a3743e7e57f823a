"""Scores and statistics: numpy/scipy only, no torch. Evaluation, calibration, CAM scores and their tests, the MRMC (Obuchowski-Rockette) analysis."""
