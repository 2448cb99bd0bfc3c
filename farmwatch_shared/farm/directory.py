"""The farm directory: every farm file (``<farm>.toml``) a service reads, plus the register maps
of its own (``register_maps/<name>.toml``, see ``register_maps``).

Installed, it is ``/etc/farmwatch/farms`` (``deploy/install-*.sh`` put the farm files there);
in development the repository's ``firmware_configs/`` is passed explicitly.
"""

from __future__ import annotations

from pathlib import Path

from farmwatch_shared.farm.model import FarmConfig, FarmConfigError, load_farm_config

DEFAULT_FARM_DIR = Path("/etc/farmwatch/farms")
"""Where the install scripts put the farm files."""


def load_farm_dir(directory: Path) -> dict[str, FarmConfig]:
    """Every farm file (``*.toml``) of ``directory``, validated, by farm id (sorted); raise
    FarmConfigError when there is none, one is invalid, or two describe the same farm."""
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise FarmConfigError(f"{directory}: no farm files (*.toml)")
    farms: dict[str, tuple[Path, FarmConfig]] = {}
    for path in files:
        config = load_farm_config(path)
        seen = farms.get(config.farm.id)
        if seen is not None:
            raise FarmConfigError(f"{path}: farm {config.farm.id} is also in {seen[0].name}")
        farms[config.farm.id] = (path, config)
    return {farm_id: farms[farm_id][1] for farm_id in sorted(farms)}
