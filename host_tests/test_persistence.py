"""Configs survive a restart of the firmware; a corrupt file gives defaults and is reported."""
import sys

from mp import ROOT
from simproc import Sim

sys.path.insert(0, str(ROOT))
from firmware.api.power_manager_api import HYSTERESIS_TIME_DEFAULT_S  # noqa: E402 (CPython-safe)


def test_restart_keeps_config_and_starts_in_default_mode(tmp_path):
    flash = tmp_path / "flash"
    s = Sim(flash)
    try:
        assert s.put("power_manager/config", {"guaranteed_power": 2000, "default_mode": 3,
                                              "cloud_filter_mode": 1})[0] == 200
        assert s.put("power_manager/debug_config", "60")[0] == 200
        assert s.put("power_manager/charge_mode", "1")[0] == 200
        cfg = s.get("power_manager/config")
    finally:
        s.stop()
    s = Sim(flash)
    try:
        assert s.get("power_manager/config") == cfg
        assert s.get("power_manager/debug_config") == {"hysteresis_time": 60}
        # The charge mode after a restart is default_mode, not the last mode used.
        assert s.get("power_manager/charge_mode") == {"mode": 3}
        assert s.get("system/state")["config_load_errors"] == []
    finally:
        s.stop()


def test_corrupt_file_is_reported_and_replaced_by_defaults(tmp_path):
    flash = tmp_path / "flash"
    s = Sim(flash)
    s.stop()
    (flash / "power_manager_debug_config.json").write_text('{"hysteresis_time": 6')
    (flash / "power_manager_dynamic_load_config.json").write_bytes(b"\xff\xfe\x00garbage")
    (flash / "power_manager_config.json.tmp").write_text("half a write")
    (flash / "charge_manager_config.json").write_text('{"chargers": [')
    s = Sim(flash)
    try:
        assert s.get("power_manager/debug_config") == {"hysteresis_time": HYSTERESIS_TIME_DEFAULT_S}
        assert s.get("power_manager/dynamic_load_config")["enabled"] is False
        errors = s.get("system/state")["config_load_errors"]
        assert any(e.startswith("power_manager/debug_config") for e in errors), errors
        assert any(e.startswith("power_manager/dynamic_load_config") for e in errors), errors
        assert any(e.startswith("charge_manager/config") for e in errors), errors
        assert "using defaults" in s.log()
        # The intact files were kept: the simulated site's seeded grid meter slot is still 3.
        assert s.get("power_manager/config")["meter_slot_grid_power"] == 3
        # A new write repairs the file.
        assert s.put("power_manager/debug_config", {"hysteresis_time": 120})[0] == 200
    finally:
        s.stop()
    s = Sim(flash)
    try:
        assert s.get("power_manager/debug_config") == {"hysteresis_time": 120}
        errors = s.get("system/state")["config_load_errors"]
        assert not any(e.startswith("power_manager/debug_config") for e in errors), errors
    finally:
        s.stop()


def test_invalid_values_in_file_are_not_trusted(tmp_path):
    flash = tmp_path / "flash"
    s = Sim(flash)
    s.stop()
    (flash / "power_manager_debug_config.json").write_text('{"hysteresis_time": 1}')
    s = Sim(flash)
    try:
        assert s.get("power_manager/debug_config") == {"hysteresis_time": HYSTERESIS_TIME_DEFAULT_S}
        assert any("minimum 10" in e for e in s.get("system/state")["config_load_errors"])
    finally:
        s.stop()


def test_corrupt_power_manager_config_still_boots(tmp_path):
    flash = tmp_path / "flash"
    s = Sim(flash)
    assert s.put("power_manager/config", {"guaranteed_power": 2000})[0] == 200
    s.stop()
    (flash / "power_manager_config.json").write_text('{"guaranteed_power": 20')
    s = Sim(flash)
    try:
        assert s.get("power_manager/config")["guaranteed_power"] == 1380  # the default
        assert any(e.startswith("power_manager/config")
                   for e in s.get("system/state")["config_load_errors"])
    finally:
        s.stop()



def test_saved_rs485_meter_of_an_unknown_model_is_reported(tmp_path):
    # A model this firmware does not know (a file from a newer firmware, or edited by hand): the
    # model check is the RS485 subsystem's, attached after the slots loaded their files, so it
    # must look at them itself. The slot is not polled (it stays stale: PV control suspended);
    # the file's values are kept, and system/state says why.
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "meters_0_config.json").write_text(
        '{"type": 2, "model": "sdm999", "slave_id": 7, "value_ids": [74], "display_name": "",'
        ' "stale_timeout_s": 30}')
    s = Sim(flash)
    try:
        errors = s.get("system/state")["config_load_errors"]
        assert any(e.startswith("meters/0/config") and "unknown meter model 'sdm999'" in e
                   for e in errors), errors
        cfg = s.get("meters/0/config")
        assert (cfg["type"], cfg["model"], cfg["slave_id"]) == (2, "sdm999", 7)
        assert s.get("meters/0/state")["stale"] is True
        assert "config: meters/0/config: Key 'model' has unknown meter model 'sdm999'" in s.log()
    finally:
        s.stop()
