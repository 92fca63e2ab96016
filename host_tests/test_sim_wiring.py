"""The simulated site behind make sim: what its options set up."""
import time

from simproc import Sim


def test_sim_with_home_battery(tmp_path):
    """make sim SIM_BATTERY=1: the battery meter in slot 4 is seeded and fed."""
    s = Sim(tmp_path / "flash", extra=("--battery", "1"))
    try:
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
    finally:
        s.stop()
