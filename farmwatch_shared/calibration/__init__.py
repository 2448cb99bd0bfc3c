"""Calibration, in one package: raw device values → calibrated values.

``tables`` (piecewise-linear interpolation), ``vessels`` (vessel geometry and level
transducers), ``curves`` (soil curves and dated calibration records), ``rain`` (tipping-bucket
counters) and ``calibrate``, the one entry point the edge agent calls.
"""
