#!/usr/bin/env python3
"""Heap benchmark: the firmware as deployed (.mpy) under `micropython -X heapsize=100wK`, with
HTTP, control, meter slots fed over HTTP, MQTT to a local mosquitto, display, Wi-Fi manager and
watchdog, for a simulated hour. Prints heap use after start and after the hour, the peak, the
largest free block, and the .mpy size of every module.

    .venv/bin/python tools/bench_heap.py [--speed 60] [--sim-s 3600] [--heap 100wK]

"100wK" = 100 K words: 200 KiB on this 64-bit host, whose objects are about twice the size of
the ESP32's 32-bit ones, so percentages of the heap are comparable. Target: peak <= 75 %.
"""
import argparse
import ast
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import deploy  # noqa: E402

MICROPYTHON = str(ROOT / ".venv" / "bin" / "micropython")
TARGET_PCT = 75


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_mosquitto(workdir):
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                        if os.path.exists("/usr/sbin/mosquitto") else None)
    if exe is None:
        return None, 0
    port = free_port()
    conf = Path(workdir) / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None, 0


def http_call(port, method, path, body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, "/" + path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def build_tree(dest):
    """The deployed tree (build/deploy) plus the probe: what runs on a board."""
    deploy.build()
    shutil.copytree(deploy.BUILD, dest)
    (dest / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "heap_probe.py", dest / "tools" / "heap_probe.py")


def run_hour(speed=60, sim_s=3600, heap="100wK", mqtt=True, http_load=True, workdir=None):
    """Run the probe; returns (stats dict, micropython output). Raises on a crash."""
    own = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench_heap_"))
    tree = workdir / "board"
    build_tree(tree)
    broker, mqtt_port = start_mosquitto(workdir) if mqtt else (None, 0)
    port = free_port()
    cmd = [MICROPYTHON, "-X", "heapsize=" + heap, str(tree / "tools" / "heap_probe.py"),
           str(workdir / "flash"), str(port), str(speed), str(sim_s)]
    if mqtt_port:
        cmd.append(str(mqtt_port))
    out_path = workdir / "probe.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tree)
    requests = errors = 0
    failed = []
    try:
        # Wait for the API, then configure an API meter in slot 0 and PV mode.
        for _ in range(200):
            try:
                http_call(port, "GET", "system/state", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        if proc.poll() is None:
            for path, body in (("meters/0/config",
                                '{"type": 1, "value_ids": [74, 14, 18, 22, 1, 2, 3]}'),
                               ("power_manager/config",
                                '{"meter_slot_grid_power": 0, "excess_charging_enable": true}'),
                               ("power_manager/charge_mode", "2")):
                # A refusal (503 or reset: the heap is short) is a result, not a crash.
                try:
                    st, _ = http_call(port, "PUT", path, body)
                    if st != 200:
                        failed.append("PUT %s %d" % (path, st))
                except OSError as e:
                    failed.append("PUT %s %s" % (path, e))
                errors += len(failed) - errors
        t0 = time.monotonic()
        paths = ("power_manager/low_level_state", "power_manager/state", "system/state",
                 "meters/0/values", "network/state", "mqtt/state", "setup")
        i = 0
        while proc.poll() is None:
            # A meter sample every ~50 ms real; a state read in between: the load a home
            # automation system and a browser put on a board.
            sim_t = (time.monotonic() - t0) * speed
            grid_w = int(-3000 + 2500 * ((sim_t // 60) % 5 - 2) / 2)
            amps = grid_w / 690.0
            body = json.dumps([grid_w, amps, amps, amps, 231.0, 230.5, 229.8])
            try:
                st, _ = http_call(port, "PUT", "meters/0/update", body)
                if st != 200:
                    errors += 1
                    failed.append("PUT meters/0/update %d" % st)
                if http_load:
                    path = paths[i % len(paths)]
                    st, _ = http_call(port, "GET", path)
                    if st not in (200, 404):         # mqtt/state is absent without MQTT
                        errors += 1
                        failed.append("GET %s %d" % (path, st))
                requests += 2 if http_load else 1
            except OSError as e:
                errors += 1
                failed.append("%s" % e)
            i += 1
            time.sleep(0.05)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if broker is not None:
            broker.kill()
            broker.wait()
    text = out_path.read_text()
    m = re.search(r"^HEAP (\{.*\})$", text, re.M)
    if proc.returncode != 0 or m is None:
        raise RuntimeError("probe failed (exit %s):\n%s" % (proc.returncode, text[-3000:]))
    stats = ast.literal_eval(m.group(1))
    blk = re.search(r"max free sz: (\d+)", text)
    stats["max_free_block"] = int(blk.group(1)) * 16 if blk else None  # 16-byte GC blocks
    stats["http_requests"] = requests
    stats["http_errors"] = errors
    stats["http_failed"] = failed[:10]
    stats["memory_errors"] = text.count("MemoryError")
    stats["task_crashes"] = text.count("Task exception wasn't retrieved")
    stats["mqtt"] = bool(mqtt_port)
    if own:
        shutil.rmtree(workdir, ignore_errors=True)
    return stats, text


# Runs in the deployed tree: what each part of the firmware keeps on the heap once loaded.
_COSTS = r"""
import sys, gc
sys.path[:0] = ['.', 'lib']
def live():
    gc.collect()
    return gc.mem_alloc()
out = []
a = live()
import asyncio
import firmware.api.http
out.append(('asyncio + firmware/api/http (HTTP server)', live() - a))
a = live()
import firmware.app as A
out.append(('firmware.app and its imports (control, api, meters)', live() - a))
from firmware.board.unix import UnixBoard
from firmware.clock import Clock
subs = A.BOARD_SUBSYSTEMS
A.BOARD_SUBSYSTEMS = ()
a = live()
app = A.App(UnixBoard(sys.argv[1]), Clock(1))
out.append(('App objects (configs, registry, slots, power manager)', live() - a))
for name in subs:
    a = live()
    __import__(name, None, None, ['install']).install(app)
    out.append((name + ' (code + install)', live() - a))
for name, b in out:
    print('COST %d %s' % (b, name))
"""


def subsystem_costs(tree, workdir):
    script = Path(workdir) / "costs.py"
    script.write_text(_COSTS)
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=1024wK", str(script),
                          str(Path(workdir) / "costs_flash")], cwd=tree, capture_output=True,
                         text=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        if line.startswith("COST "):
            _, b, name = line.split(" ", 2)
            rows.append((name, int(b)))
    return rows


def cost_table(rows, heap):
    lines = ["| %-58s | %8s | %6s |" % ("part (loaded from .mpy, live after gc)", "bytes",
                                        "heap"),
             "|%s|%s|%s|" % ("-" * 60, "-" * 10, "-" * 8)]
    for name, b in rows:
        lines.append("| %-58s | %8d | %5.1f%% |" % (name, b, 100.0 * b / heap))
    total = sum(b for _, b in rows)
    lines.append("| %-58s | %8d | %5.1f%% |" % ("total before any task runs", total,
                                               100.0 * total / heap))
    return "\n".join(lines)


def table(stats, sizes):
    heap = stats["heap"]

    def row(name, used):
        return "| %-34s | %8d | %8d | %5.1f %% |" % (name, used, heap - used, 100.0 * used / heap)

    lines = ["| %-34s | %8s | %8s | %7s |" % ("heap (-X heapsize)", "used B", "free B", "used"),
             "|%s|%s|%s|%s|" % ("-" * 36, "-" * 10, "-" * 10, "-" * 9),
             row("after start (10 s simulated)", stats["start_used"]),
             row("after %d s simulated" % stats["sim_s"], stats["end_used"]),
             row("peak (sampled live heap)", stats["peak_used"]),
             "",
             "heap %d B; largest free block after the hour %s B; %d control steps, longest "
             "period %d ms (simulated); %d display frames; %d watchdog feeds; %d HTTP requests "
             "(%d failed); MemoryErrors %d, crashed tasks %d; MQTT %s; "
             "peak %.1f %% (target <= %d %%): %s"
             % (heap, stats["max_free_block"], stats["steps"], stats["max_period_ms"],
                stats["display_frames"], stats["wdt_feeds"], stats["http_requests"],
                stats["http_errors"], stats["memory_errors"], stats["task_crashes"],
                "on" if stats["mqtt"] else "off",
                100.0 * stats["peak_used"] / heap, TARGET_PCT,
                "OK" if stats["peak_used"] * 100 <= heap * TARGET_PCT else "OVER"),
             "failed HTTP requests: %s" % (stats.get("http_failed") or "none"),
             "",
             "| %-40s | %6s |" % (".mpy module (xtensawin)", "bytes"),
             "|%s|%s|" % ("-" * 42, "-" * 8)]
    for name, size in sorted(sizes.items()):
        lines.append("| %-40s | %6d |" % (name, size))
    lines.append("| %-40s | %6d |" % ("total", sum(sizes.values())))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=int, default=60)
    ap.add_argument("--sim-s", type=int, default=3600)
    ap.add_argument("--heap", default="100wK")
    ap.add_argument("--no-mqtt", action="store_true")
    ap.add_argument("--costs", action="store_true",
                    help="only the per-part table (2 s): no simulated hour")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_heap_"))
    stats = None
    if a.costs:
        build_tree(work / "board")
    else:
        try:
            stats, _ = run_hour(a.speed, a.sim_s, a.heap, mqtt=not a.no_mqtt, workdir=work)
        except RuntimeError as e:
            print("The firmware did not run in -X heapsize=%s:\n%s\n" % (a.heap, str(e)[-600:]))
    sizes = {str(p.relative_to(deploy.BUILD)): p.stat().st_size
             for p in sorted(deploy.BUILD.rglob("*.mpy"))}
    heap_100wk = 202368
    print(cost_table(subsystem_costs(work / "board", work), heap_100wk)
          + "\n(share of the 100wK heap, %d B)\n" % heap_100wk)
    if stats is not None:
        print(table(stats, sizes))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
