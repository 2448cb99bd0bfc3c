"""Calibration, in one package: raw device values → calibrated values.

``calibrate.Calibrator`` is the one entry point (the edge agent's committer calls it for every
reading). Behind it: ``tables`` (piecewise-linear interpolation), ``vessels`` (vessel geometry
and level transducers, as farm-file models), ``curves`` (soil curves and dated calibration
records) and ``rain`` (tipping-bucket counters → rain per interval).
"""
