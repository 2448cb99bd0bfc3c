"""Register maps are found beside the farm file first, then among the shipped maps (package
data); farm directories load every farm file once."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from support.paths import FARM_FILES

from edge.cli import main as edge_main
from edge.drivers.poller import build_pollers, check_buses
from farmwatch_shared.clock import SystemClock
from farmwatch_shared.farm.directory import load_farm_dir
from farmwatch_shared.farm.model import FarmConfig, FarmConfigError, load_farm_config
from farmwatch_shared.farm.register_maps import (
    SHIPPED_MAPS,
    find_register_map,
    load_register_map,
    register_map_file,
    shipped_register_maps,
)
from farmwatch_shared.problems import ProblemLog

FARM = """
[farm]
id = "oax-maps"
name = "Mapas"

[[agents]]
id = "pi-1"

[[buses]]
id = "rs485-1"
agent = "pi-1"
driver = "modbus_rtu"
port = "/dev/null"
devices = [{{ address = 1, options = {{ register_map = "{map}" }} }}]

[[sensors]]
id = "soil"
agent = "pi-1"
channel = "M1"
kind = "soil_moisture"
coefficients = [0.0, 1.0]
source = {{ bus = "rs485-1", address = 1, point = "{point}" }}
"""

# a batch of the soil probe with moisture at 0x0012 (as the shipped map's comment warns)
OTHER_BATCH = """
[device]
name = "Sonda de suelo, otro lote / soil probe, other batch"

[fields.moisture_0x12]
address = 0x0012
type = "uint16"
scale = 0.1
"""


def farm_dir(tmp_path: Path, map_name: str, point: str, maps: dict[str, str]) -> Path:
    """A farm directory with one farm file and ``maps`` in ``register_maps/`` beside it."""
    directory = tmp_path / "farms"
    (directory / "register_maps").mkdir(parents=True)
    (directory / "oax-maps.toml").write_text(FARM.format(map=map_name, point=point))
    for name, text in maps.items():
        (directory / "register_maps" / f"{name}.toml").write_text(text)
    return directory


def test_shipped_register_maps_are_package_data_and_note_their_source() -> None:
    names = shipped_register_maps()
    assert {"soil-th-rs485", "level-rs485-hydrostatic"} <= set(names)
    for name in names:
        load_register_map(SHIPPED_MAPS / f"{name}.toml")
        assert "Source:" in (SHIPPED_MAPS / f"{name}.toml").read_text(encoding="utf-8")
    assert not (FARM_FILES / "register_maps").exists()  # moved into farmwatch_shared


def test_a_map_of_your_own_beside_the_farm_file_is_found(tmp_path: Path) -> None:
    directory = farm_dir(
        tmp_path, "soil-other-batch", "moisture_0x12", {"soil-other-batch": OTHER_BATCH}
    )
    config = load_farm_config(directory / "oax-maps.toml")
    (bus,) = config.buses
    assert bus.farm_dir == directory.absolute()
    assert check_buses(config, "pi-1")[0][0] is bus
    pollers = build_pollers(
        config, "pi-1", lambda s: None, SystemClock(), ProblemLog(logging.getLogger("test.maps"))
    )
    for poller in pollers:
        poller.close()
    assert len(pollers) == 1


def test_a_map_beside_the_farm_file_wins_over_the_shipped_one(tmp_path: Path) -> None:
    directory = farm_dir(tmp_path, "soil-th-rs485", "moisture_0x12", {"soil-th-rs485": OTHER_BATCH})
    config = load_farm_config(directory / "oax-maps.toml")
    (bus,) = config.buses
    assert register_map_file("soil-th-rs485", bus.farm_dir) == (
        directory.absolute() / "register_maps" / "soil-th-rs485.toml"
    )
    assert set(find_register_map("soil-th-rs485", bus.farm_dir).fields) == {"moisture_0x12"}
    check_buses(config, "pi-1")  # the point exists only in the local copy


def test_without_a_local_map_the_shipped_one_is_used(tmp_path: Path) -> None:
    directory = farm_dir(tmp_path, "soil-th-rs485", "moisture", {})
    config = load_farm_config(directory / "oax-maps.toml")
    assert register_map_file("soil-th-rs485", config.buses[0].farm_dir) == (
        SHIPPED_MAPS / "soil-th-rs485.toml"
    )
    check_buses(config, "pi-1")
    in_code = FarmConfig.model_validate(config.model_dump(mode="json"))
    assert in_code.buses[0].farm_dir is None  # built in code: shipped maps only
    check_buses(in_code, "pi-1")


def test_a_missing_map_names_both_places_looked_in(tmp_path: Path) -> None:
    directory = farm_dir(tmp_path, "no-such-map", "moisture", {})
    config = load_farm_config(directory / "oax-maps.toml")
    with pytest.raises(ValueError, match="no-such-map") as caught:
        check_buses(config, "pi-1")
    assert str(directory.absolute() / "register_maps") in str(caught.value)
    assert "soil-th-rs485" in str(caught.value)  # the shipped ones are listed


@pytest.mark.parametrize("name", ["../oax-maps", "/etc/passwd", "a/b", "", "x.toml"])
def test_a_map_name_cannot_reach_outside_the_map_folders(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a map name"):
        register_map_file(name, tmp_path)


def test_edge_check_config_validates_the_map_beside_the_farm_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = farm_dir(
        tmp_path, "soil-other-batch", "moisture_0x12", {"soil-other-batch": OTHER_BATCH}
    )
    monkeypatch.setenv("FARMWATCH_EDGE_FARM_FILE", str(directory / "oax-maps.toml"))
    assert edge_main(["--check-config"]) == 0
    assert "1 field buses" in capsys.readouterr().out
    (directory / "register_maps" / "soil-other-batch.toml").unlink()
    assert edge_main(["--check-config"]) == 2
    assert "soil-other-batch" in capsys.readouterr().err


def test_a_farm_directory_loads_every_farm_once_by_id(tmp_path: Path) -> None:
    assert list(load_farm_dir(FARM_FILES)) == ["chis-frailesca", "oax-istmo", "oax-mixteca"]
    with pytest.raises(FarmConfigError, match="no farm files"):
        load_farm_dir(tmp_path)
    shutil.copy(FARM_FILES / "oax-istmo.toml", tmp_path / "oax-istmo.toml")
    shutil.copy(FARM_FILES / "oax-istmo.toml", tmp_path / "copy.toml")
    with pytest.raises(FarmConfigError, match="also in"):
        load_farm_dir(tmp_path)
