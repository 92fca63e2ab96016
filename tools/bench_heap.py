#!/usr/bin/env python3
"""Heap benchmark: the firmware as deployed (.mpy) under `micropython -X heapsize=100wK` running a
full site for a simulated hour: an SDM630 grid meter and a Heidelberg wallbox on one simulated
RS485 bus (socat pty pair, one pymodbus server), the phase contactor, PV charging that starts and
stops as the sun comes and goes, a meter slot fed over HTTP plus state reads, MQTT with Home
Assistant discovery to a local mosquitto, display, Wi-Fi manager and watchdog. Prints heap use
after start and after the hour, the peak, the largest free block, what the site did (RS485
polls, charger commands) and the .mpy size of every module.

    .venv/bin/python tools/bench_heap.py [--speed 60] [--sim-s 3600] [--heap 100wK] [--no-rs485]
                                         [--romfs]

--no-rs485: the earlier, smaller site (an API meter fed over HTTP, no charger) for comparison.
--romfs: the firmware's .mpy tree in a ROMFS image mounted at /rom (deploy.py --romfs), its
bytecode executed in place, instead of .mpy files on the filesystem loaded into RAM. The Unix
port has no flash to map, so the image sits in the heap: the heap is enlarged by exactly the
image's allocation and that is subtracted from every heap figure (same budget, same percentages
as the stock layout; heap_probe.py _mount_romfs).

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


class MqttCounter:
    """Counts what the firmware publishes: Home Assistant discovery configs and state messages
    (a paho-mqtt subscriber in its own thread)."""

    def __init__(self, port):
        import paho.mqtt.client as paho
        self.discovery = set()
        self.states = 0
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.c.on_connect = lambda c, *a: c.subscribe([("homeassistant/#", 0), ("pvcc/#", 0)])
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        if msg.topic.startswith("homeassistant/"):
            if msg.payload:
                self.discovery.add(msg.topic)
        else:
            self.states += 1

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def http_call(port, method, path, body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, "/" + path, body=body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def build_tree(dest, romfs=False):
    """The deployed tree (build/deploy) plus the probe: what runs on a board. romfs: the tree
    without firmware/, which is in the ROMFS image dest/firmware.romfs instead (deploy.py
    --romfs); returns the image's size (0 without romfs)."""
    deploy.build()
    shutil.copytree(deploy.BUILD, dest)
    (dest / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "heap_probe.py", dest / "tools" / "heap_probe.py")
    if not romfs:
        return 0
    for tree in deploy.CODE_TREES:
        shutil.rmtree(dest / tree)          # the board's flash holds no firmware/ either
    size = deploy.build_romfs()
    shutil.copy(deploy.ROMFS_IMAGE, dest / "firmware.romfs")
    return size


def heap_total(heap):
    """What `-X heapsize=heap` gives the GC to allocate (gc.mem_alloc() + gc.mem_free())."""
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=%s" % heap, "-c",
                          "import gc\nprint(gc.mem_alloc() + gc.mem_free())"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(out.split()[-1])


# The GC's pool grows in steps of 4 blocks (one allocation-table byte): 128 B on this host.
_POOL_STEP = 128
_BLOCK = 32


def romfs_heap(heap, image_bytes):
    """For a ROMFS run under the budget `heap`: (the -X heapsize giving exactly the budget plus
    the image's allocation, the bytearray length to hold the image in). The bytearray (its
    object, one block, plus the data) is padded to whole pool steps, so that the heap can grow by
    exactly that much; a partition larger than its image is what a board has too."""
    alloc = -(-(image_bytes + _BLOCK) // _POOL_STEP) * _POOL_STEP
    target = heap_total(heap) + alloc
    size = target * 1295 // 1280                # pool + 1/128 allocation table + 1/256 finalisers
    total = heap_total(size)
    for _ in range(200):
        if total == target:
            return size, alloc - _BLOCK
        size += 16 if total < target else -16
        total = heap_total(size)
    raise RuntimeError("no -X heapsize gives a heap of %d B" % target)


# The flash of a configured full site (files as firmware/api/store.py writes them: one JSON
# object per config, missing keys keep their defaults): the firmware boots with all of it, as a
# real site does after its first setup. RS485: the grid meter (SDM630, slave 1) and a Heidelberg
# wallbox (slave 2) on one bus; the phase contactor (relay only, no auxiliary contact: the Unix
# board's memory pin); automatic phase switching; PV mode; a second meter slot (API meter, the
# PV inverter) fed over HTTP.
def site_config(device):
    return {
        # The fastest poll allowed: the bus paces polls in real time, the probe's clock runs
        # 60-240x faster, and the meter's values must stay fresher than stale_timeout_s
        # (30 s simulated).
        "rs485/config": {"device": device, "poll_interval_ms": 50},
        "meters/0/config": {"type": 2, "model": "sdm630", "slave_id": 1, "display_name": "grid"},
        "meters/1/config": {"type": 1, "value_ids": [74, 14, 18, 22, 1, 2, 3],
                            "display_name": "pv"},
        "charge_manager/config": {
            "chargers": [{"name": "garage", "type": "heidelberg", "address": 2,
                          "max_current": 16000}],
            "maximum_available_current": 32000, "fallback_current": 6000},
        "power_manager/contactor_config": {"contactor_installed": True},
        "power_manager/config": {"meter_slot_grid_power": 0, "excess_charging_enable": True,
                                 "phase_switching_mode": 0, "default_mode": 2},
    }


def house_grid_w(sim_t):
    """The site's grid power without the car (W, +import/-export): 10-minute spells of strong
    sun (3p charging), weak sun (1p or pause) and clouds (no surplus: charging stops), so the
    control loop starts, switches and stops the car within the hour (hysteresis 4 min)."""
    return (-7500, -2800, 600)[int(sim_t // 600) % 3]


class RtuSite:
    """The simulated RS485 line: a socat pty pair, one pymodbus server (tools/meter_sim.py)
    answering the SDM630 (slave 1) and the Heidelberg wallbox (slave 2, tools/wallbox_sim.py),
    silent for other ids. The meter measures the house plus what the car draws."""

    def __init__(self, workdir):
        import meter_sim
        import wallbox_sim
        self.fw = str(Path(workdir) / "rs485_fw")      # the firmware's end
        sim_end = str(Path(workdir) / "rs485_sim")
        self.socat = subprocess.Popen(
            ["socat", "pty,raw,echo=0,link=" + self.fw, "pty,raw,echo=0,link=" + sim_end],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sim = None
        for _ in range(100):
            if os.path.exists(self.fw) and os.path.exists(sim_end):
                break
            time.sleep(0.02)
        self.meter = meter_sim.MeterState("sdm630", power_w=house_grid_w(0))

        class Box(wallbox_sim.Heidelberg):
            phases = 3           # what the contactor feeds the box (from contactor_state reads)

            def currents(self):
                c = super().currents()
                return c if self.phases == 3 else [c[0], 0, 0]

        self.box = Box()
        self.relay_seen = set()  # relay_3p values read from power_manager/contactor_state
        self.box.max_cmd = 0           # no current until the firmware commands one
        self.sim = meter_sim.Simulator(sim_end, {1: self.meter}, boxes={2: self.box}).start()

    def contactor(self, state):
        self.relay_seen.add(bool(state.get("relay_3p")))
        self.box.phases = 3 if state.get("relay_3p") else 1

    def step(self, sim_t):
        car_w = 23 * sum(self.box.currents())          # 0.1 A per phase at 230 V
        self.meter.power_w = float(house_grid_w(sim_t) + car_w)

    def stats(self):
        cmds = [v for a, v in list(self.box.writes) if a == 261]   # current commands, 0.1 A
        starts = stops = 0
        for prev, v in zip(cmds, cmds[1:]):
            starts += prev < 60 <= v
            stops += v < 60 <= prev
        return {"meter_reads_answered": self.meter.reads, "charger_commands": len(cmds),
                "charger_starts": starts, "charger_stops": stops,
                "charger_max_cmd_ma": max(cmds, default=0) * 100,
                "contactor_relay_seen": sorted(("1p", "3p")[v] for v in self.relay_seen)}

    def close(self):
        if self.sim is not None:
            self.sim.stop()
        self.socat.terminate()
        self.socat.wait(5)


def run_hour(speed=60, sim_s=3600, heap="100wK", mqtt=True, http_load=True, workdir=None,
             rs485=True, romfs=False):
    """Run the probe; returns (stats dict, micropython output). Raises on a crash.
    rs485=True: the full site (site_config(), RtuSite; MQTT with Home Assistant discovery);
    False: only an API meter fed over HTTP and no charger (the probe before the full site).
    romfs=True: the firmware imported from a ROMFS image mounted at /rom (build_tree); the heap
    figures in stats exclude the image (romfs_heap)."""
    own = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench_heap_"))
    tree = workdir / "board"
    image_bytes = build_tree(tree, romfs)
    heap_arg, romfs_args = heap, []
    if romfs:
        heap_arg, buffer_bytes = romfs_heap(heap, image_bytes)
        romfs_args = [str(tree / "firmware.romfs"), str(buffer_bytes)]
    site = None
    broker = None
    counter = None
    proc = None
    requests = errors = 0
    failed = []
    last = {}                      # path -> the last JSON answer of a state read
    try:
        broker, mqtt_port = start_mosquitto(workdir) if mqtt else (None, 0)
        if mqtt_port and rs485:
            counter = MqttCounter(mqtt_port)
        flash = workdir / "flash"
        flash.mkdir(exist_ok=True)
        if rs485:
            site = RtuSite(workdir)
            for name, values in site_config(site.fw).items():
                (flash / (name.replace("/", "_") + ".json")).write_text(json.dumps(values))
        port = free_port()
        cmd = [MICROPYTHON, "-X", "heapsize=%s" % heap_arg,
               str(tree / "tools" / "heap_probe.py"), str(flash), str(port), str(speed),
               str(sim_s), str(mqtt_port), "1" if rs485 else "0"] + romfs_args
        out_path = workdir / "probe.out"
        with open(out_path, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tree)
        # Wait for the API, then (without the RS485 site) configure an API meter in slot 0;
        # PV mode either way.
        for _ in range(200):
            try:
                http_call(port, "GET", "system/state", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        setup = (("power_manager/charge_mode", "2"),) if rs485 else (
            ("meters/0/config", '{"type": 1, "value_ids": [74, 14, 18, 22, 1, 2, 3]}'),
            ("power_manager/config",
             '{"meter_slot_grid_power": 0, "excess_charging_enable": true}'),
            ("power_manager/charge_mode", "2"))
        if proc.poll() is None:
            for path, body in setup:
                # A refusal (503 or reset: the heap is short) is a result, not a crash.
                try:
                    st, _ = http_call(port, "PUT", path, body)
                    if st != 200:
                        failed.append("PUT %s %d" % (path, st))
                except OSError as e:
                    failed.append("PUT %s %s" % (path, e))
            errors += len(failed)
        t0 = time.monotonic()
        paths = ("power_manager/low_level_state", "power_manager/state", "system/state",
                 "meters/0/values", "network/state", "mqtt/state", "setup")
        if rs485:
            paths += ("rs485/state", "charge_manager/state", "meters/0/state",
                      "meters/1/values", "power_manager/contactor_state")
        fed = 1 if rs485 else 0        # the meter slot fed over HTTP
        i = 0
        # A probe that outlives its hour threefold has lost its monitor (an exception in it):
        # end it, the missing HEAP line then reports the failure instead of a hang.
        deadline = t0 + 3.0 * sim_s / speed + 120
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                break
            # A meter sample every ~50 ms real; a state read in between: the load a home
            # automation system and a browser put on a board.
            sim_t = (time.monotonic() - t0) * speed
            if rs485:
                site.step(sim_t)
                pv_w = house_grid_w(sim_t) - 600             # the inverter's output (W < 0)
                amps = pv_w / 690.0
                body = json.dumps([pv_w, amps, amps, amps, 231.0, 230.5, 229.8])
            else:
                grid_w = int(-3000 + 2500 * ((sim_t // 60) % 5 - 2) / 2)
                amps = grid_w / 690.0
                body = json.dumps([grid_w, amps, amps, amps, 231.0, 230.5, 229.8])
            try:
                st, _ = http_call(port, "PUT", "meters/%d/update" % fed, body)
                if st != 200:
                    errors += 1
                    failed.append("PUT meters/%d/update %d" % (fed, st))
                if http_load:
                    path = paths[i % len(paths)]
                    st, data = http_call(port, "GET", path)
                    if st not in (200, 404):         # mqtt/state is absent without MQTT
                        errors += 1
                        failed.append("GET %s %d" % (path, st))
                    elif st == 200 and path in ("rs485/state", "charge_manager/state",
                                                "power_manager/contactor_state"):
                        last[path] = json.loads(data)
                        if path == "power_manager/contactor_state":
                            site.contactor(last[path])
                requests += 2 if http_load else 1
            except OSError as e:
                errors += 1
                failed.append("%s" % e)
            i += 1
            time.sleep(0.05)
        proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if broker is not None:
            broker.kill()
            broker.wait()
        if site is not None:
            site.close()
        if counter is not None:
            counter.close()
    text = out_path.read_text()
    m = re.search(r"^HEAP (\{.*\})$", text, re.M)
    if proc.returncode != 0 or m is None:
        raise RuntimeError("probe failed (exit %s):\n%s" % (proc.returncode, text[-3000:]))
    stats = ast.literal_eval(m.group(1))
    blk = re.search(r"max free sz: (\d+)", text)           # in GC blocks
    stats["max_free_block"] = int(blk.group(1)) * stats["gc_block_bytes"] if blk else None
    stats["romfs"] = romfs
    stats["romfs_image_bytes"] = image_bytes
    image = stats["romfs_image_heap"]
    if image:
        # The image is flash on a board: out of the heap and out of every "used" figure. Free
        # figures need nothing: the heap was enlarged by exactly the image's allocation.
        for key in ("heap", "boot_used", "built_used", "peak_used", "start_used", "early_min",
                    "late_min", "end_used", "fw_peak_live"):
            if stats.get(key) is not None:
                stats[key] -= image
    stats["http_requests"] = requests
    stats["http_errors"] = errors
    stats["http_failed"] = failed[:10]
    stats["memory_errors"] = text.count("MemoryError")
    stats["task_crashes"] = text.count("Task exception wasn't retrieved")
    stats["mqtt"] = bool(mqtt_port)
    stats["rs485_site"] = rs485
    if counter is not None:
        stats["mqtt_discovery_configs"] = len(counter.discovery)
        stats["mqtt_state_messages"] = counter.states
    if rs485:
        stats.update(site.stats())
        bus = last.get("rs485/state", {}).get("slaves", {})
        stats["rs485_ok"] = {k: v.get("ok", 0) for k, v in bus.items()}
        stats["rs485_failed"] = {k: v.get("requests", 0) - v.get("ok", 0)
                                 for k, v in bus.items()}
        chs = last.get("charge_manager/state", {}).get("chargers") or [{}]
        stats["charger_reachable"] = chs[0].get("reachable", False)
        stats["charger_errors"] = chs[0].get("errors")
        cs = last.get("power_manager/contactor_state", {})
        stats["contactor_installed"] = cs.get("installed", False)
        stats["contactor_error"] = cs.get("error")
    if own:
        shutil.rmtree(workdir, ignore_errors=True)
    return stats, text


# Runs in the deployed tree: what each part of the firmware keeps on the heap once loaded.
_COSTS = r"""
import sys, gc
sys.path[:0] = ['.', 'lib']
if len(sys.argv) > 3:           # --romfs: the firmware in a ROMFS image at /rom (heap_probe.py)
    import vfs
    _img = bytearray(int(sys.argv[3]))
    with open(sys.argv[2], 'rb') as f:
        f.readinto(_img)
    vfs.mount(vfs.VfsRom(_img), '/rom')
    sys.path.append('/rom/lib')
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


def subsystem_costs(tree, workdir, image_bytes=0):
    script = Path(workdir) / "costs.py"
    script.write_text(_COSTS)
    cmd = [MICROPYTHON, "-X", "heapsize=1024wK", str(script), str(Path(workdir) / "costs_flash")]
    if image_bytes:
        cmd += [str(Path(tree) / "firmware.romfs"), str(image_bytes)]
    out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=60).stdout
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


def layout_line(romfs, image_bytes=0, image_heap=0):
    if not romfs:
        return ("layout: filesystem (the firmware's .mpy files on the board's filesystem, loaded "
                "into RAM: a stock ESP32_GENERIC image)")
    return ("layout: ROMFS (the firmware's .mpy files in a %d B ROMFS image mounted at /rom, "
            "bytecode executed in place: deploy.py --romfs, an image with a romfs partition); "
            "this host has no flash to map, so the image sits in the heap, allocated first and "
            "excluded from every figure below%s"
            % (image_bytes, ", the heap enlarged by exactly its %d B allocation" % image_heap
               if image_heap else ""))


def table(stats, sizes):
    heap = stats["heap"]

    def row(name, used):
        return "| %-34s | %8d | %8d | %5.1f %% |" % (name, used, heap - used, 100.0 * used / heap)

    if stats.get("rs485_site"):
        site = ("site: full (RS485 bus: SDM630 grid meter slave 1 + Heidelberg wallbox slave 2, "
                "contactor, automatic phase switching, PV mode, API meter slot 1 fed over HTTP, "
                "MQTT with HA discovery)\n"
                "RS485 polls ok (firmware's rs485/state, per slave) %s, failed %s; meter reads "
                "answered by the simulator %d; charger current commands %d (starts %d, stops %d, "
                "highest %d mA), reachable at the end %s, charger errors %s; contactor "
                "installed %s, error %s, relay seen in %s; MQTT: %s discovery configs, %s "
                "state messages"
                % (stats.get("rs485_ok"), stats.get("rs485_failed"),
                   stats["meter_reads_answered"], stats["charger_commands"],
                   stats["charger_starts"], stats["charger_stops"],
                   stats["charger_max_cmd_ma"], stats.get("charger_reachable"),
                   stats.get("charger_errors"), stats.get("contactor_installed"),
                   stats.get("contactor_error"), "/".join(stats["contactor_relay_seen"]),
                   stats.get("mqtt_discovery_configs"), stats.get("mqtt_state_messages")))
    else:
        site = "site: no RS485 (API meter slot 0 fed over HTTP, no charger; --no-rs485)"
    lines = [layout_line(stats.get("romfs"), stats.get("romfs_image_bytes", 0),
                         stats.get("romfs_image_heap", 0)), site, "",
             "| %-34s | %8s | %8s | %7s |" % ("heap (-X heapsize)", "used B", "free B", "used"),
             "|%s|%s|%s|%s|" % ("-" * 36, "-" * 10, "-" * 10, "-" * 9),
             row("after start (10 s simulated)", stats["start_used"]),
             row("floor, 2 min .. half time", stats.get("early_min") or 0),
             row("floor, last quarter", stats.get("late_min") or 0),
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
             "failed HTTP requests: %s" % (stats.get("http_failed") or "none")]
    if sizes:
        lines += ["", sizes_table(sizes)]
    return "\n".join(lines)


def sizes_table(sizes):
    lines = ["| %-40s | %6s |" % (".mpy module (xtensawin)", "bytes"),
             "|%s|%s|" % ("-" * 42, "-" * 8)]
    for name, size in sorted(sizes.items()):
        lines.append("| %-40s | %6d |" % (name, size))
    lines.append("| %-40s | %6d |" % ("total", sum(sizes.values())))
    return "\n".join(lines)


def summary(runs):
    """One line per layout: the figures the target is about, side by side."""
    lines = ["| layout (full site, -X heapsize=%s) | after start | after %d s | free after %d s "
             "| peak | largest free block | MemoryErrors | HTTP failed | target <= %d %% |"
             % (runs[0][1]["heap_arg"], runs[0][1]["sim_s"], runs[0][1]["sim_s"], TARGET_PCT),
             "|---|---|---|---|---|---|---|---|---|"]
    for name, st in runs:
        heap = st["heap"]
        lines.append("| %s | %d (%.1f %%) | %d (%.1f %%) | %d | %d (%.1f %%) | %s | %d | %d of %d | %s |"
                     % (name, st["start_used"], 100.0 * st["start_used"] / heap, st["end_used"],
                        100.0 * st["end_used"] / heap, heap - st["end_used"], st["peak_used"],
                        100.0 * st["peak_used"] / heap, st["max_free_block"],
                        st["memory_errors"], st["http_errors"], st["http_requests"],
                        "met" if st["peak_used"] * 100 <= heap * TARGET_PCT
                        and st["memory_errors"] == 0 else "not met"))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed", type=int, default=60)
    ap.add_argument("--sim-s", type=int, default=3600)
    ap.add_argument("--heap", default="100wK")
    ap.add_argument("--no-mqtt", action="store_true")
    ap.add_argument("--no-rs485", action="store_true",
                    help="no RS485 site: an API meter fed over HTTP, no charger (comparison)")
    ap.add_argument("--costs", action="store_true",
                    help="only the per-part table (2 s): no simulated hour")
    ap.add_argument("--romfs", action="store_true",
                    help="the firmware in a ROMFS image mounted at /rom (code executed in place)")
    ap.add_argument("--both", action="store_true",
                    help="one hour with the firmware in ROMFS, one from the filesystem, and a "
                         "summary of the two (what `make bench-heap` runs)")
    a = ap.parse_args()
    if a.both and not a.costs:
        runs = []
        for name, romfs in (("ROMFS (make deploy ROMFS=1)", True),
                            ("filesystem (make deploy, stock image)", False)):
            work = Path(tempfile.mkdtemp(prefix="bench_heap_"))
            stats, _ = run_hour(a.speed, a.sim_s, a.heap, mqtt=not a.no_mqtt, workdir=work,
                                rs485=not a.no_rs485, romfs=romfs)
            stats["heap_arg"] = a.heap
            runs.append((name, stats))
            print(table(stats, {}) + "\n")
            shutil.rmtree(work, ignore_errors=True)
        print(sizes_table({str(p.relative_to(deploy.BUILD)): p.stat().st_size
                           for p in sorted(deploy.BUILD.rglob("*.mpy"))}) + "\n")
        print(summary(runs))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_heap_"))
    stats = None
    image_bytes = 0
    if a.costs:
        image_bytes = build_tree(work / "board", a.romfs)
    else:
        try:
            stats, _ = run_hour(a.speed, a.sim_s, a.heap, mqtt=not a.no_mqtt, workdir=work,
                                rs485=not a.no_rs485, romfs=a.romfs)
        except RuntimeError as e:
            print("The firmware did not run in -X heapsize=%s:\n%s\n" % (a.heap, str(e)[-600:]))
        image_bytes = deploy.ROMFS_IMAGE.stat().st_size if a.romfs else 0
    sizes = {str(p.relative_to(deploy.BUILD)): p.stat().st_size
             for p in sorted(deploy.BUILD.rglob("*.mpy"))}
    heap_100wk = 202368
    print(layout_line(a.romfs, image_bytes))
    print(cost_table(subsystem_costs(work / "board", work, image_bytes), heap_100wk)
          + "\n(share of the 100wK heap, %d B)\n" % heap_100wk)
    if stats is not None:
        print(table(stats, sizes))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
