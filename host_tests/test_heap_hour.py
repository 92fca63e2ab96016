"""The firmware as deployed (.mpy) under micropython -X heapsize=100wK (an ESP32 without PSRAM)
runs a full site for a simulated hour: an SDM630 grid meter and a Heidelberg wallbox on one
simulated RS485 bus, the phase contactor, PV charging that starts and stops, HTTP (a meter slot
fed, state read out), MQTT with Home Assistant discovery, display, Wi-Fi manager, watchdog, heap
housekeeping. tools/bench_heap.py prints the full table."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_heap  # noqa: E402


def check_hour(stats):
    assert stats["memory_errors"] == 0 and stats["task_crashes"] == 0, stats
    assert stats["sim_s"] >= 3600
    # Everything kept running. (Counts, not rates: at 240x on a shared CPU the loops get fewer
    # turns per simulated second; the benchmark reports the rates.)
    assert stats["steps"] > 500 and stats["display_frames"] > 20 and stats["wdt_feeds"] > 100
    # No request failed inside the firmware (a 500 would be a MemoryError in a handler); a
    # rare client-side timeout on a loaded test machine is tolerated.
    assert stats["http_requests"] > 20, stats
    assert not [f for f in stats["http_failed"] if " 500" in f], stats["http_failed"]
    assert stats["http_errors"] * 50 <= stats["http_requests"], stats["http_failed"]
    # Nothing grows: the floor of the live heap (its lowest samples) in the last quarter of the
    # hour is where it was between 2 min and half time (+-4 KiB), and not above the level after
    # the start. (Floors, not single samples: an MQTT pass or a request in flight lifts one
    # sample, a leak lifts the floor.)
    assert abs(stats["late_min"] - stats["early_min"]) <= 4096, stats
    assert stats["late_min"] - stats["start_used"] <= 4096, stats
    if stats["rs485_site"]:
        check_site(stats)


def check_site(stats):
    """The RS485 site really ran, not just loaded: the firmware read the grid meter and the
    wallbox on the shared bus all hour, and drove the wallbox: charging started and stopped as
    the surplus came and went (tools/bench_heap.py house_grid_w: three sunny spells)."""
    ok, bad = stats["rs485_ok"], stats["rs485_failed"]
    assert ok.get("1", 0) > 100 and ok.get("2", 0) > 100, stats
    assert bad.get("1", 0) * 20 <= ok["1"] and bad.get("2", 0) * 20 <= ok["2"], stats
    assert stats["meter_reads_answered"] > 100, stats
    assert stats["charger_commands"] > 100 and stats["charger_reachable"], stats
    assert stats["charger_starts"] >= 2 and stats["charger_stops"] >= 2, stats
    assert stats["charger_max_cmd_ma"] >= 6000, stats
    assert stats["contactor_installed"] and stats["contactor_error"] == 0, stats
    if stats["mqtt"]:
        assert stats["mqtt_discovery_configs"] >= 5 and stats["mqtt_state_messages"] > 100, stats


# The hour is checked at 200wK for leaks and crashes, and at the 100wK target: the smaller site
# without RS485 (an API meter fed over HTTP, no charger) fits since the MQTT subsystem loads its
# client only while enabled (04:30 UTC); the full site does not yet (strict xfail below).
FITS_HEAP = "200wK"
_OVER_BUDGET = (
    "measured 05:30 UTC with the full RS485 site (meter + wallbox on the bus, contactor, MQTT "
    "with discovery): at 100wK (202 KB) it starts and runs the hour (peak 173 KB, 85.7 %) with "
    "everything but MQTT, whose client cannot be imported (retried every 30 s, each retry logs "
    "a MemoryError); with MQTT the site peaks at ~194 KB (at 200wK). Breakdown: make "
    "bench-heap, docs/board.md. Remove this mark when the budget is met.")


def test_firmware_runs_a_simulated_hour_with_mqtt(tmp_path):
    stats, _ = bench_heap.run_hour(speed=240, sim_s=3600, heap=FITS_HEAP, mqtt=True,
                                   workdir=tmp_path)
    print("\n" + bench_heap.table(stats, {}))
    assert stats["mqtt"], "mosquitto is not installed"
    assert stats["rs485_site"]
    check_hour(stats)


@pytest.mark.xfail(strict=True, raises=(RuntimeError, AssertionError), reason=_OVER_BUDGET)
def test_firmware_runs_a_simulated_hour_at_100wk(tmp_path):
    stats, _ = bench_heap.run_hour(speed=240, sim_s=3600, heap="100wK", mqtt=True,
                                   workdir=tmp_path)
    check_hour(stats)


def test_smaller_site_runs_a_simulated_hour_at_100wk(tmp_path):
    stats, _ = bench_heap.run_hour(speed=240, sim_s=3600, heap="100wK", mqtt=True,
                                   workdir=tmp_path, rs485=False)
    assert not stats["rs485_site"]
    check_hour(stats)


def test_full_site_from_romfs_runs_a_simulated_hour_at_100wk(tmp_path):
    """The full site with the firmware in a ROMFS image (deploy.py --romfs: code executed in place
    from flash) fits the 100wK budget: every part runs, MQTT included, no MemoryError. The
    image sits in the heap on the Unix port; run_hour enlarges the heap by exactly its
    allocation and takes it out of every figure, so the budget is the stock layout's."""
    stats, _ = bench_heap.run_hour(speed=240, sim_s=3600, heap="100wK", mqtt=True,
                                   workdir=tmp_path, romfs=True)
    print("\n" + bench_heap.table(stats, {}))
    assert stats["romfs"] and stats["romfs_image_heap"] >= stats["romfs_image_bytes"] > 50000
    assert stats["heap"] == bench_heap.heap_total("100wK"), stats      # the budget, image out
    assert stats["mqtt"] and stats["rs485_site"]
    check_hour(stats)
