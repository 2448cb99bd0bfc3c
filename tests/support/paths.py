"""Where the repository's data is, and the users and farms the test broker knows."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FARM_FILES = REPO / "firmware_configs"
"""The repository's farm directory (installed: /etc/farmwatch/farms)."""
COLLECTOR_USER = "farmwatch-collector"
ALERTS_USER = "farmwatch-alerts"
FARMS = ("oax-mixteca", "oax-istmo", "chis-frailesca")
