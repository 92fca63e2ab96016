"""The simulated site behind make sim: what its options set up."""
import time

from simproc import Sim


def test_sim_with_home_battery(tmp_path):
    """make sim SIM_BATTERY=1: the battery meter in slot 4 is seeded and fed."""
    with Sim(tmp_path / "flash", extra=("--battery", "1")) as s:
        assert s.get("power_manager/config")["meter_slot_battery_power"] == 4
        assert s.get("meters/4/config")["type"] == 3
        deadline = time.monotonic() + 10
        while s.get("meters/4/values")["387"] is None:
            assert time.monotonic() < deadline, s.get("meters/4/values")
            time.sleep(0.1)
        assert 0 <= s.get("meters/4/values")["387"] <= 100
        # The power manager sees the fed battery meter at its next step (bit 2: battery stale):
        # the value above may be newer than the state read right after it.
        while s.get("power_manager/low_level_state")["charging_blocked"] & 2:
            assert time.monotonic() < deadline, s.get("power_manager/low_level_state")
            time.sleep(0.1)


def test_sim_without_battery_in_a_folder_that_had_one_drops_it(tmp_path):
    """make sim SIM_BATTERY=1, then make sim in the same SIM_DIR without it (README: the folder
    keeps the configuration): the simulated battery is gone again. It stayed configured before,
    with no data behind it, so PV charging was blocked for good (charging_blocked 3)."""
    with Sim(tmp_path / "flash", extra=("--battery", "1")) as s:
        assert s.get("power_manager/config")["meter_slot_battery_power"] == 4
    with Sim(tmp_path / "flash") as s:
        assert s.get("power_manager/config")["meter_slot_battery_power"] == 255
        assert s.get("meters/4/config")["type"] == 0
    with Sim(tmp_path / "flash", extra=("--battery", "1")) as s:
        assert s.get("power_manager/config")["meter_slot_battery_power"] == 4
        assert s.get("meters/4/config")["type"] == 3


def test_sim_without_battery_keeps_a_meter_the_user_put_in_slot_4(tmp_path):
    """Only the simulator's own battery is dropped: an API meter the user configured in slot 4
    and chose as the battery meter stays."""
    with Sim(tmp_path / "flash") as s:
        assert s.put("meters/4/config", {"type": 1, "value_ids": [74]})[0] == 200
        assert s.put("power_manager/config", {"meter_slot_battery_power": 4})[0] == 200
    with Sim(tmp_path / "flash") as s:
        assert s.get("meters/4/config")["type"] == 1
        assert s.get("power_manager/config")["meter_slot_battery_power"] == 4


def test_sim_without_grid_meter_in_a_folder_that_had_one_feeds_the_simulated_grid_again(tmp_path):
    """make sim GRID_METER=/tmp/m/a (docs/meters.md), then a plain make sim in the same SIM_DIR:
    slot 3 is the simulated grid meter again. It stayed an RS485 meter on a pty that was gone, so
    the site's grid power never reached the power manager (stale, PV charging off)."""
    with Sim(tmp_path / "flash", extra=("--grid-meter", str(tmp_path / "no_such_pty"))) as s:
        assert s.get("meters/3/config")["type"] == 2
    with Sim(tmp_path / "flash") as s:
        assert s.get("meters/3/config")["type"] == 3
        deadline = time.monotonic() + 10
        while s.get("meters/3/state")["stale"]:
            assert time.monotonic() < deadline, s.get("meters/3/state")
            time.sleep(0.1)


def test_sim_without_grid_meter_keeps_an_rs485_meter_the_user_configured(tmp_path):
    """Only the simulator's own GRID_METER set-up is undone: a slot 3 the user made an RS485
    meter over the API stays one."""
    with Sim(tmp_path / "flash") as s:
        assert s.put("meters/3/config", {"type": 2, "model": "em24", "slave_id": 2})[0] == 200
    with Sim(tmp_path / "flash") as s:
        cfg = s.get("meters/3/config")
        assert (cfg["type"], cfg["model"]) == (2, "em24")


def test_make_sim_noise_makes_the_grid_meter_restless(tmp_path):
    """make sim SIM_NOISE=40: the house load moves from one simulated second to the next, as a
    real meter's does; without it the grid power only moves with the profile's minute steps and
    the house model's appliances."""
    changes = {}
    for noise in ("0", "40"):
        with Sim(tmp_path / ("flash" + noise), speed=10, via_make=True,
                 make_vars=("SIM_NOISE=" + noise,)) as s:
            s.put("power_manager/charge_mode", 1)      # Off: the car's steps would hide it
            time.sleep(0.5)
            seen = []
            end = time.monotonic() + 4                 # ~40 simulated seconds
            while time.monotonic() < end:
                seen.append(s.get("meters/3/values")["74"])
                time.sleep(0.1)
            changes[noise] = sum(1 for a, b in zip(seen, seen[1:]) if a != b)
    assert changes["40"] >= 8 and changes["0"] <= 3, changes
