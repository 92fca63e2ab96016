"""Configs survive a restart of the firmware; a corrupt file gives defaults and is reported."""
import json
import sys
import time

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
        # A new write repairs the file, and its error is gone at once (not only after a boot).
        assert s.put("power_manager/debug_config", {"hysteresis_time": 120})[0] == 200
        errors = s.get("system/state")["config_load_errors"]
        assert not any(e.startswith("power_manager/debug_config") for e in errors), errors
        assert any(e.startswith("charge_manager/config") for e in errors), errors
    finally:
        s.stop()
    s = Sim(flash)
    try:
        assert s.get("power_manager/debug_config") == {"hysteresis_time": 120}
        errors = s.get("system/state")["config_load_errors"]
        assert not any(e.startswith("power_manager/debug_config") for e in errors), errors
    finally:
        s.stop()


def _until(s, path, pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while True:
        v = s.get(path)
        if pred(v) or time.monotonic() > end:
            return v
        time.sleep(0.1)


def test_a_corrupt_dlm_config_blocks_charging_until_it_is_written(tmp_path):
    # The file exists, so DLM was configured once and may be what keeps the fuse safe: running
    # on the defaults (DLM off) would drop that protection without anyone asking for it.
    flash = tmp_path / "flash"
    s = Sim(flash)
    s.stop()
    (flash / "power_manager_dynamic_load_config.json").write_text('{"enabled": tr')
    s = Sim(flash, speed=10)
    try:
        assert s.put("power_manager/charge_mode", "0")[0] == 200      # Fast: needs no surplus
        low = _until(s, "power_manager/low_level_state", lambda v: v["charging_blocked"] & 32)
        assert low["charging_blocked"] & 32, low                      # 32: DLM
        assert low["charge_manager_available_current"] == 0, low
        assert any(e.startswith("power_manager/dynamic_load_config")
                   for e in s.get("system/state")["config_load_errors"])
        # Writing the config again (here: DLM off, on purpose) releases it.
        assert s.put("power_manager/dynamic_load_config", {"enabled": False})[0] == 200
        low = _until(s, "power_manager/low_level_state",
                     lambda v: v["charge_manager_available_current"] > 0)
        assert not low["charging_blocked"] & 32 and low["charge_manager_available_current"] > 0, low
        assert s.get("system/state")["config_load_errors"] == []
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


_CONFIGS = ["power_manager/config", "power_manager/dynamic_load_config",
            "power_manager/debug_config", "power_manager/contactor_config",
            "charge_manager/config", "rs485/config", "mqtt/config", "network/wifi"] + \
    ["meters/%d/config" % i for i in range(7)]


def _wrong_types(d):
    """Every key with a value of another JSON type."""
    return {k: ("x" if isinstance(v, (bool, int, list)) else 5) for k, v in d.items()}


def test_every_config_file_broken_every_way_boots_with_defaults_and_says_so(tmp_path):
    # docs/input-audit.md: every config object's file truncated, garbage, of the wrong shape or
    # with every key of the wrong type. Each boot must come up, name every broken file in
    # system/state and the log, and serve the defaults.
    flash = tmp_path / "flash"
    s = Sim(flash)
    try:
        for path in _CONFIGS:   # a write creates each file (secrets read as null: left out)
            cur = s.get(path)
            status, text = s.put(path, {k: v for k, v in cur.items() if v is not None})
            assert status == 200, (path, text)
    finally:
        s.stop()
    files = {p: flash / (p.replace("/", "_") + ".json") for p in _CONFIGS}
    good = {p: json.loads(f.read_text()) for p, f in files.items()}
    variants = {
        "empty": lambda p: b"",
        "truncated": lambda p: json.dumps(good[p]).encode()[:9],
        "garbage": lambda p: bytes(range(256)),
        "a list": lambda p: b"[1, 2]",
        "wrong types": lambda p: json.dumps(_wrong_types(good[p])).encode(),
    }
    for name, make in variants.items():
        for p, f in files.items():
            f.write_bytes(make(p))
        s = Sim(flash)
        try:
            errors = s.get("system/state")["config_load_errors"]
            for p in _CONFIGS:
                assert any(e.startswith(p + ":") for e in errors), (name, p, errors)
            assert s.get("power_manager/debug_config") == \
                {"hysteresis_time": HYSTERESIS_TIME_DEFAULT_S}, name
            assert s.get("mqtt/config")["enable"] is False
            log = s.log()
            assert "Traceback" not in log and "using defaults" in log, (name, log[-2000:])
        finally:
            s.stop()
