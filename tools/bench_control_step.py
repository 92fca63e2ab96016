#!/usr/bin/env python3
"""Benchmark of the power manager's control step on the MicroPython Unix port.

Runs firmware.control.power_manager in `micropython` for several modes and prints a table:
median and 95th-percentile microseconds per step, and heap bytes allocated per step in steady
state (gc.mem_alloc delta with the collector disabled). CPython host tool:

    .venv/bin/python tools/bench_control_step.py [--steps N] [--micropython PATH]
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import sys, gc, json, time
from array import array
sys.path[:0] = [%(root)r]
from firmware.control.power_manager import PowerManager

STEPS = %(steps)d
BASE = {"phase_switching_mode": 0, "excess_charging_enable": True, "meter_slot_grid_power": 0,
        "target_power_from_grid": 0, "guaranteed_power": 1380, "cloud_filter_mode": 3,
        "meter_slot_battery_power": 255, "battery_mode": 0, "battery_inverted": False,
        "battery_deadzone": 100}
LIM = {"max_current_ma": 32000, "min_current_1p_ma": 6000, "min_current_3p_ma": 6000,
       "contactor_installed": True, "charger_count": 1}
CASES = (
    ("PV auto 1p/3p, strong filter", 2, {}, 0),
    ("PV + battery, medium filter", 2, {"meter_slot_battery_power": 1, "cloud_filter_mode": 2}, 0),
    ("Min+PV, no filter", 3, {"cloud_filter_mode": 0}, 0),
    ("Fast, 3p", 0, {}, 0),
    ("Off", 1, {}, 0),
    ("External control 3p", 0, {"phase_switching_mode": 3, "excess_charging_enable": False}, 3),
)

def make(mode, cfg, pw):
    c = dict(BASE)
    c.update(cfg)
    pm = PowerManager()
    pm.configure(c, {"hysteresis_time": 60}, LIM)
    pm.set_charge_mode(mode)
    pm.set_phases_wanted(pw)
    pm.grid_age_ms = 100
    pm.battery_age_ms = 100
    return pm

def drive(pm, n, times):
    # A sunny day with passing clouds; the meter delivers a fresh sample every other step
    # (2 Hz meter, 4 Hz loop). The car follows the offered current one step later.
    car_w = 0
    ticks_us = time.ticks_us
    ticks_diff = time.ticks_diff
    for i in range(n):
        k = i %% 211
        pv_w = 9000 - (k * 37 if k < 120 else (211 - k) * 41)
        pm.grid_w = 400 - pv_w + car_w
        pm.grid_fresh = (i & 1) == 0
        pm.battery_w = (k - 100) * 13
        pm.charging_w = car_w
        pm.voltage_v = 231 + (k & 7)
        t0 = ticks_us()
        pm.step(250)
        t1 = ticks_us()
        if times is not None:
            times[i] = ticks_diff(t1, t0)
        pm.is_3phase = pm.wants_3phase
        car_w = pm.charge_manager_available_current * 230 * (3 if pm.is_3phase else 1) // 1000

rows = []
pm = None
for name, mode, cfg, pw in CASES:
    pm = None       # free the previous case's object before measuring this one's size
    gc.collect()
    before = gc.mem_alloc()
    pm = make(mode, cfg, pw)
    gc.collect()
    size = gc.mem_alloc() - before
    drive(pm, 4000, None)                  # warm up: fill the 480 s ring, settle decisions
    times = array("i", bytes(4 * STEPS))
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    drive(pm, STEPS, times)
    a1 = gc.mem_alloc()
    gc.enable()
    ts = sorted(times)
    rows.append([name, ts[len(ts) // 2], ts[len(ts) * 95 // 100], ts[-1],
                 (a1 - a0) / STEPS, size, pm.is_on_last, pm.wants_3phase])
print(json.dumps(rows))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--micropython", default=os.environ.get(
        "MICROPYTHON", str(ROOT / ".venv" / "bin" / "micropython")))
    args = ap.parse_args()
    code = _SCRIPT % {"root": str(ROOT), "steps": args.steps}
    proc = subprocess.run([args.micropython, "-X", "heapsize=1024wK", "-c", code],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.exit("micropython failed:\n" + proc.stdout + proc.stderr)
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    ver = subprocess.run([args.micropython, "-c", "import sys; print(sys.version)"],
                         capture_output=True, text=True).stdout.strip()
    print("power manager step on the MicroPython Unix port (%s), %d steps per case"
          % (ver, args.steps))
    print()
    hdr = ("case", "median us", "p95 us", "max us", "bytes/step", "object bytes")
    print("| %-30s | %9s | %6s | %6s | %10s | %12s |" % hdr)
    print("|%s|%s|%s|%s|%s|%s|" % ("-" * 32, "-" * 11, "-" * 8, "-" * 8, "-" * 12, "-" * 14))
    for name, med, p95, mx, bps, size, _on, _p3 in rows:
        print("| %-30s | %9d | %6d | %6d | %10.2f | %12d |" % (name, med, p95, mx, bps, size))


if __name__ == "__main__":
    main()
