"""RS485 meter benchmark (CPython): the firmware under tools/sim_main.py (what `make sim` runs)
with its grid meter slot on a simulated SDM630 (tools/meter_sim.py, pymodbus on a socat pty pair).
The simulator adds real line time for 9600 8N1 both ways and a 30 ms meter answer delay, since a
pty does not pace bytes. Prints a table of

1. complete SDM630 polls per second (currents + total power; voltages and energies every 10th
   poll), against the wire-time limit of exactly those requests (DOMAIN 5 timing);
2. latency from a value change in the simulator to power_manager/low_level_state.power_at_meter;
3. the control loop period (250 ms nominal) with no meter, with the bus busy, with the meter
   silent (every request times out).

Usage: .venv/bin/python tools/bench_meters.py [--seconds 10] [--changes 20]
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tests"))
sys.path.insert(0, str(ROOT / "tools"))

import meter_sim  # noqa: E402
from simproc import Sim  # noqa: E402

BAUD = 9600
DELAY_MS = 30
CHAR_MS = 10 * 1000.0 / BAUD          # 8N1: 10 bits a character
GAP_MS = 3.5 * CHAR_MS                # the 3.5-character silence before a request
# SDM630 plan (firmware/meters/plan.py; asserted in host_tests/test_meters_models.py):
FAST_READS = (12, 2)                  # registers: currents + phase powers, total power
SLOW_READS = (6, 4)                   # voltages, energies: every 10th poll
SLOW_EVERY = 10


def read_ms(regs):
    """Wire time of one read: gap + request (8 bytes) + answer delay + answer (5 + 2n bytes)."""
    return GAP_MS + 8 * CHAR_MS + DELAY_MS + (5 + 2 * regs) * CHAR_MS


def limit_polls_per_s():
    per_poll = sum(read_ms(n) for n in FAST_READS) + sum(read_ms(n) for n in SLOW_READS) / SLOW_EVERY
    return 1000.0 / per_poll, per_poll


def sample_periods(sim, seconds):
    vals = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        vals.append(sim.get("system/state")["period_ms"])
        time.sleep(0.25)
    return vals


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--changes", type=int, default=20)
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_meters_"))
    fw_end, sim_end = str(tmp / "fw"), str(tmp / "sim")
    socat = subprocess.Popen(["socat", "pty,raw,echo=0,link=" + fw_end,
                              "pty,raw,echo=0,link=" + sim_end],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(fw_end) and os.path.exists(sim_end):
            break
        time.sleep(0.02)
    meter = meter_sim.MeterState("sdm630", 1000.0)
    simulator = meter_sim.Simulator(sim_end, {1: meter}, baud=BAUD, delay_ms=DELAY_MS).start()
    sim = None
    rows = []
    try:
        sim = Sim(tmp / "flash", extra=("--grid-meter", fw_end, "--meter-model", "sdm630"))
        # Poll as fast as the bus allows: the interval is below one poll's wire time.
        assert sim.put("rs485/config", {"poll_interval_ms": 50, "gap_ms": 4})[0] == 200
        time.sleep(2.0)

        # 1. polls per second
        s0 = sim.get("meters/3/state")
        t0 = time.monotonic()
        periods_busy = sample_periods(sim, a.seconds)
        s1 = sim.get("meters/3/state")
        dt = time.monotonic() - t0
        polls = (s1["readings"] - s0["readings"]) / dt
        limit, per_poll_ms = limit_polls_per_s()
        errors = sum(s1[k] - s0[k] for k in ("timeouts", "crc_errors", "frame_errors", "exceptions"))
        rows.append(("SDM630 complete polls/s (9600 8N1, 30 ms answer delay)",
                     "%.2f" % polls, "wire-time limit %.2f (%.0f ms a poll)" % (limit, per_poll_ms)))
        rows.append(("  share of the wire-time limit", "%.0f %%" % (100 * polls / limit),
                     "target >= 80 %"))
        rows.append(("  bus errors during the run", str(errors), "timeouts, CRC, frame, exceptions"))

        # 2. latency from a value change to power_at_meter
        lat = []
        value = 1000.0
        for _ in range(a.changes):
            time.sleep(random.uniform(0.3, 0.6))
            value = -value + random.choice((-7.0, 13.0))
            t_change = time.monotonic()
            meter.power_w = value
            while True:
                if abs(sim.get("power_manager/low_level_state")["power_at_meter"] - value) < 1:
                    lat.append((time.monotonic() - t_change) * 1000)
                    break
                if time.monotonic() - t_change > 5:
                    lat.append(float("nan"))
                    break
                time.sleep(0.02)  # gentle: HTTP requests share the firmware's loop
        good = sorted(x for x in lat if x == x)
        rows.append(("latency value change -> power_at_meter, median ms",
                     "%.0f" % statistics.median(good),
                     "p90 %.0f, max %.0f, n=%d (poll ~%.0f ms + control period 250 ms)"
                     % (good[int(0.9 * (len(good) - 1))], good[-1], len(good), per_poll_ms)))

        # 3. control loop period: busy (above), silent meter, no meter
        simulator.proxy.fault = "silent"
        time.sleep(1.0)
        periods_silent = sample_periods(sim, a.seconds / 2)
        simulator.proxy.fault = None
        assert sim.put("meters/3/config", {"type": 0})[0] == 200
        time.sleep(1.0)
        periods_idle = sample_periods(sim, a.seconds / 2)
        for name, vals in (("no RS485 meter", periods_idle), ("bus busy (polls back to back)",
                                                               periods_busy),
                           ("meter silent (every request times out)", periods_silent)):
            rows.append(("control loop period, " + name, "%.0f" % statistics.mean(vals),
                         "min %d, max %d ms over %d samples (nominal 250)"
                         % (min(vals), max(vals), len(vals))))
    finally:
        if sim:
            sim.stop()
        simulator.stop()
        socat.terminate()
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print("%-*s  %*s  %s" % (w0, "measure", w1, "value", "reference"))
    print("-" * (w0 + w1 + 40))
    for r in rows:
        print("%-*s  %*s  %s" % (w0, r[0], w1, r[1], r[2]))


if __name__ == "__main__":
    main()
