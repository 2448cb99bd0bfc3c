"""The database layout the collector sets up and the dashboards query: retention policies and
downsampled series (``farmwatch-influx-setup`` creates them)."""

RAW_RP = "raw"
RP_15M = "agg_15m"
RP_1D = "agg_1d"
LEVEL_MEASUREMENTS = ("water_level", "soil_moisture")
"""Aggregated as mean/min/max (+ mean litres for water levels)."""
SUM_MEASUREMENTS = ("rain",)
"""Aggregated as a sum (rain is mm since the previous reading)."""
DAY_OFFSET = "6h"
"""Daily buckets start at local midnight in Oaxaca and Chiapas (UTC−6, no DST since 2022)."""
