#!/usr/bin/env python3
"""Heap the RS485 meter subsystem costs, on the firmware as deployed (.mpy, as
tools/bench_heap.py builds it): installed with no RS485 meter, after rs485/config is written,
and with one meter configured and polled (a simulated meter: tools/meter_sim.py, pymodbus on a
socat pty pair, as host_tests do it).

    .venv/bin/python tools/bench_rs485_heap.py [--model sdm630] [--polls 30]

Every number is live heap after gc.collect(), relative to the app with the subsystems installed
before firmware.meters.rs485 (the order of firmware/app.py), on this 64-bit host.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_heap  # noqa: E402
import meter_sim  # noqa: E402

_PROBE = r"""
import sys, gc, json
sys.path[:0] = ['.', 'lib']
import asyncio
import micropython
def live():
    gc.collect()
    micropython.qstr_info()  # prints the qstr pool total: its growth is reported on its own
    return gc.mem_alloc()
import firmware.app as A
from firmware.board.unix import UnixBoard
from firmware.clock import Clock
flash, dev, model, polls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
subs = A.BOARD_SUBSYSTEMS
A.BOARD_SUBSYSTEMS = ()
app = A.App(UnixBoard(flash), Clock(1))
for name in subs[:subs.index('firmware.meters.rs485')]:
    app.tasks.extend(__import__(name, None, None, ['install']).install(app) or ())
rows = []
base = live()
n0 = len(app.tasks)
own = __import__('firmware.meters.rs485', None, None, ['install']).install(app) or ()
own = app.tasks[n0:] + list(own)
rows.append(('installed, no RS485 meter', live() - base))
app.registry.write('rs485/config', json.dumps({'device': dev, 'poll_interval_ms': 100,
                                               'gap_ms': 2}))
rows.append(('rs485/config written, no RS485 meter', live() - base))
app.registry.write('meters/0/config', json.dumps({'type': 2, 'model': model, 'slave_id': 1}))
rows.append(('one %s configured (bus, poller, plan)' % model, live() - base))
async def main():
    for c in own:  # tasks the subsystem returned or added at install, if any
        asyncio.create_task(c)
    slot = app.slots[0]
    t = 0
    while slot.update_count < polls:
        await asyncio.sleep_ms(20)
        t += 20
        if t > 30000:
            raise SystemExit('no readings: %r' % (app.registry.read('meters/0/state'),))
    rows.append(('one %s polled %d times' % (model, slot.update_count), live() - base))
    app.registry.read('meters/0/state')
    app.registry.read('rs485/state')
    rows.append(('... and its state read once', live() - base))
    for name, b in rows:
        print('ROW %d %s' % (b, name))
asyncio.run(main())
"""


def measure(model="sdm630", polls=30):
    work = Path(tempfile.mkdtemp(prefix="bench_rs485_heap_"))
    tree = work / "board"
    bench_heap.build_tree(tree)
    a, b = str(work / "fw"), str(work / "sim")
    socat = subprocess.Popen(["socat", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim = None
    try:
        for _ in range(100):
            if os.path.exists(a) and os.path.exists(b):
                break
            time.sleep(0.02)
        sim_model = "sdm630" if model == "eastron" else model  # detected by its meter code
        sim = meter_sim.Simulator(b, {1: meter_sim.MeterState(sim_model)}).start()
        script = work / "probe.py"
        script.write_text(_PROBE)
        (work / "flash").mkdir()
        proc = subprocess.run([bench_heap.MICROPYTHON, "-X", "heapsize=1024wK", str(script),
                               str(work / "flash"), a, model, str(polls)],
                              cwd=tree, capture_output=True, text=True, timeout=120)
        rows = []
        # A live() call is one qstr_info line; base = the first one, row i = call i + 1 (the
        # rs485/config write and the state reads in between call none).
        qstr = [int(x) for x in re.findall(r"n_total_bytes=(\d+)", proc.stdout)]
        for i, line in enumerate(ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")):
            _, n, name = line.split(" ", 2)
            rows.append((name, int(n), qstr[i + 1] - qstr[0] if len(qstr) > i + 1 else 0))
        if proc.returncode != 0 or not rows:
            raise RuntimeError("probe failed:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
        return rows
    finally:
        if sim is not None:
            sim.stop()
        socat.terminate()
        socat.wait(5)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sdm630")
    ap.add_argument("--polls", type=int, default=30)
    a = ap.parse_args()
    rows = measure(a.model, a.polls)
    print("| %-46s | %8s | %10s |" % ("firmware.meters.rs485 (live heap after gc)", "bytes",
                                       "qstr pool"))
    print("|%s|%s|%s|" % ("-" * 48, "-" * 10, "-" * 12))
    for name, n, q in rows:
        print("| %-46s | %8d | %10d |" % (name, n, q))
    print("(qstr pool: growth of the interned-string pool included in bytes. It grows in chunks "
          "of increasing size, paid by whichever import overflows it: an artifact of import "
          "order, shared by every later import.)")


if __name__ == "__main__":
    main()
