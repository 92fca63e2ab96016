"""MQTT benchmark (CPython): a real mosquitto, the firmware on the MicroPython Unix port,
paho-mqtt as the other side. Prints a table of

1. latency from a state change in the firmware to the message at a subscriber: in a stand-in
   app whose state carries the time of its change (interval 1 s, a change every 1.3 s so the
   rate limit itself is not measured), and on the whole firmware (tools/sim_main.py) from an
   HTTP write of the charge mode to its MQTT message;
2. the control loop period idle, and while a subscriber floods
   `<prefix>/power_manager/charge_mode_update` with 100 messages/s (valid and invalid mixed):
   a 100 ms stand-in loop timed in microseconds, and the firmware's own 250 ms control loop
   (system/state period_ms, sampled every 50 ms).

Usage: .venv/bin/python tools/bench_mqtt.py [--seconds 10]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tests"))

from mqtt_support import Broker, MpProc, Observer  # noqa: E402
from simproc import Sim  # noqa: E402

PFX = "bench/dev"

# The firmware side: the MQTT subsystem installed as app.py does, a state object whose changes
# carry their own wall-clock time, and a 100 ms loop that reports its periods.
_FW = """
import asyncio, time, gc
from firmware.clock import Clock
from firmware.api.registry import Registry
from firmware.api.store import Store
from firmware.api.config import ConfigObject, Field, INT
gc.collect()
_mem0 = gc.mem_alloc()  # what MQTT adds, from its import (bytecode) to a connected client
from firmware.mqtt import service

store = Store(%(dir)r)
store.save("mqtt/config", %(mqtt)r)

class BenchState:
    def __init__(self):
        self.seq = 0
        self.t_ns = 0
    def to_dict(self):
        return {"seq": self.seq, "t_ns": self.t_ns, "pad": "%(pad)s"}

class App:
    pass
app = App()
app.clock = Clock()
app.registry = Registry()
app.store = store
app.configs = {}
app.board = None
st = app.registry.add("bench/state", BenchState())
for i in range(8):  # a registry of realistic size
    app.registry.add("bench/other%%d" %% i, ConfigObject("o", [Field("v", INT, i)]))
app.registry.add("power_manager/charge_mode",
                 ConfigObject("power_manager/charge_mode", [Field("mode", INT, 0, choices=[0, 1, 2, 3])]))
coros = service.install(app)

async def control_loop():
    clock = app.clock
    last_us = time.ticks_us()
    next_change = clock.ticks_ms() + 1000
    periods = []
    while True:
        await clock.sleep_ms(100)
        now_us = time.ticks_us()
        periods.append(time.ticks_diff(now_us, last_us))
        last_us = now_us
        if time.ticks_diff(clock.ticks_ms(), next_change) >= 0:
            st.seq += 1
            st.t_ns = time.time_ns()
            next_change = clock.ticks_ms() + 1300
        if len(periods) == 10:
            if not getattr(app, "mem_done", False) and app.mqtt.client.connected:
                app.mem_done = True
                gc.collect()
                print("MEM", gc.mem_alloc() - _mem0)
            print("PERIODS", periods)
            periods = []
            c = app.mqtt.client
            print("STAT", c.connected, c.dropped, app.mqtt.bridge.rejected)

async def main():
    for c in coros:
        asyncio.create_task(c)
    await control_loop()
asyncio.run(main())
"""


class Flood:
    """Publishes charge_mode_update writes (valid and invalid, QoS 0 and 1) at `rate_hz` from a
    thread, from construction until stop(), which returns the rate achieved (messages/s)."""

    PAYLOADS = (b"2", b'{"mode": 3}', b'{"mode": 9}', b"{garbage", b'"x"')

    def __init__(self, client, topic, rate_hz=100):
        import threading
        self.client, self.topic, self.period_s = client, topic, 1 / rate_hz
        self.sent = 0
        self._stop = False
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        t_next = time.monotonic()
        while not self._stop:
            self.client.publish(self.topic, self.PAYLOADS[self.sent % len(self.PAYLOADS)],
                                qos=self.sent % 2)
            self.sent += 1
            t_next += self.period_s
            time.sleep(max(0.0, t_next - time.monotonic()))

    def stop(self):
        self._stop = True
        self._thread.join()
        return self.sent / (time.monotonic() - self._t0)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def loop_periods(fw, seconds):
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += fw.wait_json("PERIODS", timeout=5)
    return [us / 1000 for us in out]


def bench_sim(seconds):
    """The whole firmware (tools/sim_main.py): latency from an HTTP write of the charge mode to
    its MQTT message, and the real control loop (250 ms) idle and under an _update flood."""
    rows = {}
    with Broker() as broker, tempfile.TemporaryDirectory() as tmp:
        sim = Sim(Path(tmp) / "flash")
        pfx = "bench/sim"
        obs = None
        try:
            status, text = sim.put("mqtt/config", {"enable": True, "broker_host": "127.0.0.1",
                                                   "broker_port": broker.port, "prefix": pfx})
            assert status == 200, text
            mode_topic = pfx + "/power_manager/charge_mode"
            obs = Observer(broker.port, [mode_topic])
            obs.wait_topic(mode_topic, timeout=15)
            lat = []
            for i in range(int(seconds)):
                mode = i % 2
                t0 = time.monotonic()
                sim.put("power_manager/charge_mode", str(mode))
                m = obs.wait_topic(mode_topic, payload_pred=lambda p: json.loads(p)["mode"] == mode)
                lat.append((m[3] - t0) * 1000)
                time.sleep(0.7)
            rows["write -> MQTT message, whole firmware (ms)"] = lat

            def sample(secs):
                out = []
                end = time.monotonic() + secs
                while time.monotonic() < end:
                    out.append(sim.get("system/state")["period_ms"])
                    time.sleep(0.05)
                return out

            rows["loop period, whole firmware, idle (ms, 250 nominal)"] = sample(seconds)
            max_idle = sim.get("system/state")["max_period_ms"]
            flood = Flood(obs.c, pfx + "/power_manager/charge_mode_update")
            busy = sample(seconds)
            rate = flood.stop()
            rows["loop period, whole firmware, flood %.0f msg/s (ms)" % rate] = busy
            st = sim.get("system/state")
            mq = sim.get("mqtt/state")
            note = ("whole firmware: max loop period since boot %d ms before the flood, %d ms "
                    "after; %d rejected writes, MQTT connected: %s, connects: %d"
                    % (max_idle, st["max_period_ms"], mq["rejected_writes"], mq["connected"],
                       mq["connects"]))
        finally:
            if obs is not None:
                obs.close()
            sim.stop()
    return rows, note


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    args = ap.parse_args()
    sim_rows, sim_note = bench_sim(args.seconds)

    with Broker() as broker, tempfile.TemporaryDirectory() as tmp:
        cfg = {"enable": True, "broker_host": "127.0.0.1", "broker_port": broker.port,
               "prefix": PFX, "interval": 1}
        obs = Observer(broker.port, [PFX + "/bench/state", PFX + "/mqtt/error",
                                     PFX + "/power_manager/charge_mode"])
        fw = MpProc(_FW % dict(dir=tmp, mqtt=cfg, pad="x" * 200), heap="100wK")
        try:
            mem = int(fw.wait_line(lambda s: s.startswith("MEM"), timeout=15).split()[1])
            fw.wait_line(lambda s: s.startswith("STAT True"), timeout=5)
            obs.drain()

            # 1. latency state change -> subscriber, and the loop period without traffic
            lat_ms = []
            idle = []
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                try:
                    m = obs.wait_topic(PFX + "/bench/state", timeout=2)
                except AssertionError:
                    continue
                t_ns = json.loads(m[1])["t_ns"]
                if t_ns:
                    lat_ms.append((time.time_ns() - t_ns) / 1e6)
            while not fw.lines.empty():
                line = fw.lines.get()
                if line and line.startswith("PERIODS "):
                    idle += [us / 1000 for us in json.loads(line[8:])]

            # 2. flood _update at 100 msg/s while measuring the loop period
            flood = Flood(obs.c, PFX + "/power_manager/charge_mode_update")
            busy = loop_periods(fw, args.seconds)
            rate = flood.stop()
            stat = fw.wait_line(lambda s: s.startswith("STAT"), timeout=5).split()
            errors = sum(1 for m in obs.log if m[0] == PFX + "/mqtt/error")
        finally:
            fw.close()
            obs.close()

    print()
    print("MQTT benchmark (mosquitto on localhost, firmware on the MicroPython Unix port)")
    print()
    print("| measurement | n | median | p95 | max |")
    print("|---|---|---|---|---|")
    print("| state change -> subscriber (ms) | %d | %.1f | %.1f | %.1f |"
          % (len(lat_ms), statistics.median(lat_ms), pct(lat_ms, 95), max(lat_ms)))
    print("| loop period, idle (ms, 100 nominal) | %d | %.1f | %.1f | %.1f |"
          % (len(idle), statistics.median(idle), pct(idle, 95), max(idle)))
    print("| loop period, _update flood %.0f msg/s (ms) | %d | %.1f | %.1f | %.1f |"
          % (rate, len(busy), statistics.median(busy), pct(busy, 95), max(busy)))
    for name, vals in sim_rows.items():
        print("| %s | %d | %.1f | %.1f | %.1f |"
              % (name, len(vals), statistics.median(vals), pct(vals, 95), max(vals)))
    print()
    print(sim_note)
    print("stand-in: heap held by the MQTT subsystem once connected (Unix port, 64-bit "
          "objects): %d bytes" % mem)
    print("flood: %d messages sent, %d rejected writes reported on %s/mqtt/error, "
          "client still connected: %s" % (flood.sent, errors, PFX, stat[1]))


if __name__ == "__main__":
    main()
