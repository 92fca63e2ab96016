#!/usr/bin/env python3
"""Simulated RS485 meters for the firmware: a pymodbus RTU server on a pty, behind a raw-bytes
proxy that can add real line time and fault injection.

    socat -d -d pty,raw,echo=0,link=/tmp/m/a pty,raw,echo=0,link=/tmp/m/b &
    python tools/meter_sim.py --port /tmp/m/b --meter 1:sdm630 --power-w 2000 --wave 60
    make sim GRID_METER=/tmp/m/a METER_MODEL=sdm630        # the firmware on the other end

The firmware side opens the other end of the pair. Unknown slave ids get no answer (as on a real
bus). --control FILE is a JSON object polled every 0.2 s, e.g. {"power_w": -1500} or
{"fault": "silent"}: values and faults change while the firmware polls.

CPython 3.11 host tool; the register maps here are written independently of
firmware/meters/models.py (from the manufacturers' tables, DOMAIN 5) so the tests cross-check
the firmware's tables instead of repeating them.
"""
import argparse
import asyncio
import json
import logging
import math
import os
import struct
import sys
import time

from loop_thread import LoopThread

# Per model: function code of the measurement registers, encoding, register addresses of the
# simulated quantities (u: phase voltage V, i: phase current A, p: phase power W, ptot: total
# power W, e_in / e_out: energy kWh), the scale (register = value / scale), the longest read the
# meter answers (max_regs; longer: exception 3) and setup holding registers ({address: value},
# MeterState.setup). Sources per value: docs/meters-audit.md.
SIM_MODELS = {
    # "Each request for data must be restricted to 40 parameters or less" (SDM630 protocol 1.2)
    "sdm630": {"fc": 4, "enc": "f32be", "code": 0x70, "max_regs": 80,
               "u": (0x00, 0x02, 0x04), "i": (0x06, 0x08, 0x0A), "p": (0x0C, 0x0E, 0x10),
               "ptot": 0x34, "e_in": 0x48, "e_out": 0x4A,
               "scale": {"u": 1, "i": 1, "p": 1, "ptot": 1, "e": 1}},
    # "... restricted to 30 parameters or less" (Eastron SDM72 manuals, PART 3)
    "sdm72dm2": {"fc": 4, "enc": "f32be", "code": 0x89, "max_regs": 60,
                 "u": (0x00, 0x02, 0x04), "i": (0x06, 0x08, 0x0A), "p": (0x0C, 0x0E, 0x10),
                 "ptot": 0x34, "e_in": 0x48, "e_out": 0x4A,
                 "scale": {"u": 1, "i": 1, "p": 1, "ptot": 1, "e": 1}},
    "sdm120": {"fc": 4, "enc": "f32be", "phases": 1, "max_regs": 80,
               "u": (0x00,), "i": (0x06,), "p": (0x0C,), "ptot": 0x0C, "e_in": 0x48,
               "e_out": 0x4A, "scale": {"u": 1, "i": 1, "p": 1, "ptot": 1, "e": 1}},
    # EM24-DIN protocol 1.2.2: "maximum 11 register (word) with a single request"; 2.9.2:
    # application (0x1101) 7 = H, the only one showing export as negative power.
    "em24": {"fc": 4, "enc": "s32le", "max_regs": 11, "setup": {0x1101: 7},
             "u": (0x00, 0x02, 0x04), "i": (0x0C, 0x0E, 0x10), "p": (0x12, 0x14, 0x16),
             "ptot": 0x28, "e_in": 0x3E, "e_out": 0x5C,
             "scale": {"u": 0.1, "i": 0.001, "p": 0.1, "ptot": 0.1, "e": 0.1}},
    # Measurement mode (0x1103) 1 = b, bidirectional (0 = A does not show export negative).
    "em340": {"fc": 4, "enc": "s32le", "setup": {0x1103: 1},
              "u": (0x00, 0x02, 0x04), "i": (0x0C, 0x0E, 0x10), "p": (0x12, 0x14, 0x16),
              "ptot": 0x28, "e_in": 0x34, "e_out": 0x4E,
              "scale": {"u": 0.1, "i": 0.001, "p": 0.1, "ptot": 0.1, "e": 0.1}},
    "dtsu666": {"fc": 3, "enc": "f32be",
                "u": (0x2006, 0x2008, 0x200A), "i": (0x200C, 0x200E, 0x2010),
                "p": (0x2014, 0x2016, 0x2018), "ptot": 0x2012, "e_in": 0x101E, "e_out": 0x1028,
                "scale": {"u": 0.1, "i": 0.001, "p": 0.1, "ptot": 0.1, "e": 1}},
    "abb_b2x": {"fc": 3, "enc": "abb",
                "u": (0x5B00, 0x5B02, 0x5B04), "i": (0x5B0C, 0x5B0E, 0x5B10),
                "p": (0x5B16, 0x5B18, 0x5B1A), "ptot": 0x5B14, "e_in": 0x5000, "e_out": 0x5004,
                "scale": {"u": 0.1, "i": 0.01, "p": 0.01, "ptot": 0.01, "e": 0.01}},
}


class MeterState:
    """What the simulated meter measures. Phase powers split the total (or are given), currents
    are |P|/U magnitudes as the meters report them, energies count up."""

    def __init__(self, model, power_w=1500.0, voltage_v=230.0, missing=()):
        self.model = model
        # Quantities this meter variant does not have ("u", "p", "e"): their registers answer
        # exception 2 (illegal data address), as on a real meter.
        self.missing = set(missing)
        self.phases = SIM_MODELS[model].get("phases", 3)
        self.power_w = power_w
        self.phase_w = None  # explicit per-phase powers, else an equal split
        self.voltage_v = voltage_v
        self.e_in_kwh = 1234.5
        self.e_out_kwh = 567.8
        self.reads = 0
        # Setup holding registers (EM24 application, EM3xx measurement mode): change them to
        # simulate a meter set up otherwise.
        self.setup = dict(SIM_MODELS[model].get("setup", {}))
        # The longest read it answers (longer: exception 3); lower it to simulate a stricter unit.
        self.max_regs = SIM_MODELS[model].get("max_regs", 125)

    def phase_powers(self):
        if self.phase_w is not None:
            return list(self.phase_w)[:self.phases]
        return [self.power_w / self.phases] * self.phases

    def expected(self):
        """The values the firmware should report (value id -> value)."""
        pw = self.phase_powers()
        out = {74: sum(pw) if self.phase_w is not None else self.power_w,
               209: self.e_in_kwh, 211: self.e_out_kwh}
        for n in range(self.phases):
            out[(1, 2, 3)[n]] = self.voltage_v
            out[(14, 18, 22)[n]] = pw[n] / self.voltage_v
        return out

    def image(self):
        """{address: register} of the current values."""
        spec = SIM_MODELS[self.model]
        sc = spec["scale"]
        regs = {}
        pw = self.phase_powers()
        total = sum(pw) if self.phase_w is not None else self.power_w

        def put(addr, value, kind):
            if kind in self.missing:
                return
            value = value / sc[kind]
            enc = spec["enc"]
            if enc == "f32be":
                words = struct.unpack(">HH", struct.pack(">f", value))
            elif enc == "s32le":
                hi, lo = struct.unpack(">HH", struct.pack(">i", int(round(value))))
                words = (lo, hi)
            elif kind == "e":  # ABB energies: U64
                words = struct.unpack(">HHHH", struct.pack(">Q", int(round(value))))
            elif kind in ("p", "ptot"):  # ABB: S32
                words = struct.unpack(">HH", struct.pack(">i", int(round(value))))
            else:  # ABB: U32
                words = struct.unpack(">HH", struct.pack(">I", int(round(value))))
            for k, w in enumerate(words):
                regs[addr + k] = w

        for n in range(self.phases):
            put(spec["u"][n], self.voltage_v, "u")
            put(spec["i"][n], abs(pw[n]) / self.voltage_v, "i")
            put(spec["p"][n], pw[n], "p")
        put(spec["ptot"], total, "ptot")
        put(spec["e_in"], self.e_in_kwh, "e")
        put(spec["e_out"], self.e_out_kwh, "e")
        return regs


def _blocks(addrs, holes=()):
    """Contiguous address ranges covering `addrs` (gaps of up to 64 registers filled with 0s,
    as a real meter answers 0 for registers it has but we do not simulate; never across
    `holes`, the registers of missing quantities)."""
    addrs = sorted(addrs)
    out = []
    start = prev = addrs[0]
    for a in addrs[1:]:
        if a - prev > 64 or any(prev < h < a for h in holes):
            out.append((start, prev - start + 1))
            start = a
        prev = a
    out.append((start, prev - start + 1))
    return out


def build_device(slave, state):
    from pymodbus.simulator import SimData, SimDevice
    from pymodbus.simulator.simutils import DataType
    from pymodbus.constants import ExcCodes
    spec = SIM_MODELS[state.model]
    image = state.image()
    holes = []
    for kind in state.missing:
        keys = {"u": ("u",), "p": ("p",), "e": ("e_in", "e_out")}[kind]
        for k in keys:
            for a in (spec[k] if isinstance(spec[k], tuple) else (spec[k],)):
                holes.extend((a, a + 1, a + 2, a + 3) if k.startswith("e") else (a, a + 1))
    holes = [h for h in holes if h not in image]
    meas = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
            for a, n in _blocks(image, holes)]
    hold = []
    if "code" in spec:  # Eastron meter code, holding register 0xFC02
        hold.append(SimData(address=0xFC02, count=1, values=spec["code"],
                            datatype=DataType.REGISTERS))
    if spec["fc"] == 4:  # configuration registers (writable, for 06/16 tests)
        hold.append(SimData(address=0, count=16, values=0, datatype=DataType.REGISTERS))
    for a in sorted(state.setup):  # answered from state.setup by action()
        hold.append(SimData(address=a, count=1, values=0, datatype=DataType.REGISTERS))
    hr = meas if spec["fc"] == 3 else hold
    ir = meas if spec["fc"] == 4 else [SimData(address=0, count=1, values=0,
                                               datatype=DataType.REGISTERS)]
    if not hr:
        hr = [SimData(address=0, count=1, values=0, datatype=DataType.REGISTERS)]
    bits = [SimData(address=0, count=1, values=False, datatype=DataType.BITS)]

    async def action(fc, start, address, count, registers, values):
        if fc in (3, 4) and fc == spec["fc"]:
            if count > state.max_regs:
                return ExcCodes.ILLEGAL_VALUE  # ILLEGAL DATA VALUE, as the EM24 does for long reads
            state.reads += 1
            img = state.image()
            for a in range(address, address + count):
                if a in img:
                    registers[a - start] = img[a]
        elif fc == 3:
            for a in range(address, address + count):
                if a in state.setup:
                    registers[a - start] = state.setup[a]
        return None

    return SimDevice(id=slave, simdata=(bits, list(bits), hr, ir), action=action)


def crc16(data):
    c = 0xFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
    return bytes((c & 0xFF, c >> 8))


class Proxy:
    """Raw-bytes proxy between the firmware's pty and the pymodbus server's pty.

    Adds line time (baud, 10 bits a character) both ways and the meter's answer delay, and
    injects faults: fault = None | "silent" | "bad_crc" | "truncate" | "stray" | "exception" |
    "slow" | "garbage_only" | "stutter" (half an answer, then all of it). fault_count: how many answers to spoil (None = until cleared)."""

    def __init__(self, outer_fd, inner_fd, baud=None, delay_ms=0):
        self.outer = outer_fd
        self.inner = inner_fd
        self.baud = baud
        self.delay_ms = delay_ms
        self.fault = None
        self.fault_count = None
        self.script = []
        self.exception_code = 2
        self.slow_ms = 250
        self.requests = 0
        self.answers = 0
        self.spoiled = 0

    def _take_fault(self):
        if self.script:  # [(mode, requests), ...]: a scripted sequence, consumed in order
            mode, n = self.script[0]
            if n <= 1:
                self.script.pop(0)
            else:
                self.script[0] = (mode, n - 1)
            if mode is not None:
                self.spoiled += 1
            return mode
        f = self.fault
        if f is None:
            return None
        if self.fault_count is not None:
            self.fault_count -= 1
            if self.fault_count <= 0:
                self.fault = None
                self.fault_count = None
        self.spoiled += 1
        return f

    async def _paced_write(self, fd, data):
        if not self.baud:
            os.write(fd, data)
            return
        char_s = 10.0 / self.baud
        t0 = time.monotonic()
        sent = 0
        while sent < len(data):
            due = min(len(data), int((time.monotonic() - t0) / char_s) + 1)
            if due > sent:
                os.write(fd, data[sent:due])
                sent = due
            if sent < len(data):
                await asyncio.sleep(char_s)
        # the last character's own time on the wire
        rest = t0 + len(data) * char_s - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)

    async def _read_frame(self, fd, q, first_timeout):
        """Read one frame from queue q of chunks: complete by length, else by silence."""
        buf = b""
        timeout = first_timeout
        while True:
            try:
                chunk = await asyncio.wait_for(q.get(), timeout)
            except asyncio.TimeoutError:
                return buf
            buf += chunk
            need = _frame_len(buf, fd == self.inner)
            if need is not None and len(buf) >= need:
                return buf
            timeout = 0.02

    async def run(self):
        loop = asyncio.get_running_loop()
        qo, qi = asyncio.Queue(), asyncio.Queue()
        loop.add_reader(self.outer, lambda: qo.put_nowait(_read(self.outer)))
        loop.add_reader(self.inner, lambda: qi.put_nowait(_read(self.inner)))
        while True:
            req = await self._read_frame(self.outer, qo, None)
            if len(req) < 8 or crc16(req[:-2]) != req[-2:]:
                continue  # not a request: a real slave ignores it
            self.requests += 1
            t_req = time.monotonic()
            if self.baud:  # the request's own time on the wire
                await asyncio.sleep(len(req) * 10.0 / self.baud)
                t_req = time.monotonic()
            fault = self._take_fault()
            if fault == "silent":
                continue
            if fault == "exception":
                ans = bytes((req[0], req[1] | 0x80, self.exception_code))
                ans += crc16(ans)
            else:
                while not qi.empty():
                    qi.get_nowait()
                os.write(self.inner, req)
                ans = await self._read_frame(self.inner, qi, 0.15)
                if not ans:
                    continue  # unknown slave: silence
            if self.delay_ms:  # the meter answers delay_ms after the request (pymodbus's own
                # turnaround is part of it, not added to it)
                rest = t_req + self.delay_ms / 1000 - time.monotonic()
                if rest > 0:
                    await asyncio.sleep(rest)
            if fault == "bad_crc":
                ans = ans[:-1] + bytes(((ans[-1] ^ 0x5A),))
            elif fault == "truncate":
                ans = ans[: max(1, len(ans) // 2)]
            elif fault == "stray":
                await self._paced_write(self.outer, b"\x00\xff\x13\x37" + bytes((req[0], req[1])))
                await asyncio.sleep(0.01)
            elif fault == "slow":
                await asyncio.sleep(self.slow_ms / 1000)
            elif fault == "stutter":  # a truncated copy, then the whole answer right behind it
                ans = ans[: len(ans) // 2] + ans
            elif fault == "garbage_only":
                ans = bytes((req[0], req[1], 0xEE, 0xEE, 0xEE))
            await self._paced_write(self.outer, ans)
            self.answers += 1


def _read(fd):
    try:
        return os.read(fd, 512)
    except OSError:
        return b""


def _frame_len(buf, is_answer):
    if len(buf) < 2:
        return None
    fc = buf[1]
    if is_answer:
        if fc & 0x80:
            return 5
        if fc in (3, 4):
            return 5 + buf[2] if len(buf) >= 3 else None
        return 8
    if fc in (3, 4, 6):
        return 8
    if fc == 16:
        return 9 + buf[6] if len(buf) >= 7 else None
    return 8


class Simulator(LoopThread):
    """pymodbus RTU server with meters on an inner pty, proxied to `port` (the socat end the
    firmware does not use). Runs in its own thread with its own event loop (start()/stop()).
    `boxes` ({slave id: wallbox_sim.Heidelberg() | EvseWb()}) puts wallboxes on the same bus,
    answered by the same server, as on a site where meter and wallbox share one RS485 line."""

    def __init__(self, port, meters, baud=None, delay_ms=0, boxes=None):
        self.port = port
        self.meters = meters  # {slave id: MeterState}
        self.boxes = boxes or {}
        self.baud = baud
        self.delay_ms = delay_ms
        self.proxy = None
        self.init_loop_thread()

    async def _main(self):
        import termios
        import tty
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        outer = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(outer)
        m_fd, s_fd = os.openpty()
        tty.setraw(m_fd)
        tty.setraw(s_fd)
        attrs = termios.tcgetattr(m_fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(m_fd, termios.TCSANOW, attrs)
        os.set_blocking(m_fd, False)
        devices = [build_device(sid, st) for sid, st in sorted(self.meters.items())]
        if self.boxes:
            from wallbox_sim import _device
            devices += [_device(sid, box) for sid, box in sorted(self.boxes.items())]
        server = ModbusSerialServer(devices, framer=FramerType.RTU, port=os.ttyname(s_fd),
                                    baudrate=9600, ignore_missing_devices=True)
        _silence_unknown_ids(server)
        self.proxy = Proxy(outer, m_fd, self.baud, self.delay_ms)
        self._stop_ev = asyncio.Event()
        tasks = [asyncio.create_task(server.serve_forever()),
                 asyncio.create_task(self.proxy.run())]
        await asyncio.sleep(0.3)
        self._ready.set()
        await self._stop_ev.wait()
        loop = asyncio.get_running_loop()
        loop.remove_reader(outer)
        loop.remove_reader(m_fd)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await server.shutdown()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
        for fd in (outer, m_fd, s_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _silence_unknown_ids(server):
    """pymodbus 3.16's SimCore answers an unknown slave id with exception 4 (its device lookup
    raises KeyError, not NoSuchIdException, so ignore_missing_devices has no effect). A real RS485
    slave stays silent: make the lookup raise the exception the server ignores."""
    from pymodbus.exceptions import NoSuchIdException
    core = server.context
    devices = core.devices

    def get_device(device_id):
        if device_id in devices:
            return devices[device_id]
        raise NoSuchIdException("no device %d" % device_id)
    core._SimCore__get_device = get_device


def parse_meters(specs, power_w):
    meters = {}
    for spec in specs:
        sid, _, model = spec.partition(":")
        if model not in SIM_MODELS:
            raise SystemExit("unknown model %r: known are %s" % (model, ", ".join(SIM_MODELS)))
        meters[int(sid)] = MeterState(model, power_w)
    return meters


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", required=True, help="pty/tty path the simulator answers on")
    ap.add_argument("--meter", action="append", default=[],
                    help="SLAVE:MODEL, e.g. 1:sdm630 (repeatable); models: " + ", ".join(SIM_MODELS))
    ap.add_argument("--power-w", type=float, default=1500.0, help="total power (+import/-export)")
    ap.add_argument("--wave", type=float, default=0.0,
                    help="vary the power as a sine of this period in s (amplitude 3000 W)")
    ap.add_argument("--line-baud", type=int, default=0, help="add real line time at this baud")
    ap.add_argument("--delay-ms", type=int, default=0, help="meter answer delay")
    ap.add_argument("--control", help="JSON file polled for power_w / phase_w / fault changes")
    a = ap.parse_args(argv)
    meters = parse_meters(a.meter or ["1:sdm630"], a.power_w)
    sim = Simulator(a.port, meters, a.line_baud or None, a.delay_ms).start()
    print("meter_sim: %s on %s" % (", ".join("%d:%s" % (k, v.model) for k, v in meters.items()),
                                   a.port), flush=True)
    t0 = time.monotonic()
    last_ctl = None
    while True:
        time.sleep(0.2)
        if a.wave:
            for st in meters.values():
                st.power_w = a.power_w + 3000 * math.sin(2 * math.pi * (time.monotonic() - t0) / a.wave)
        if a.control and os.path.exists(a.control):
            try:
                with open(a.control) as f:
                    ctl = json.load(f)
            except (OSError, ValueError):
                continue
            if ctl != last_ctl:
                last_ctl = ctl
                if "power_w" in ctl:
                    a.wave = 0  # a value set by hand holds: it ends the --wave oscillation
                for st in meters.values():
                    if "power_w" in ctl:
                        st.power_w = float(ctl["power_w"])
                    if "phase_w" in ctl:
                        st.phase_w = ctl["phase_w"]
                sim.proxy.fault = ctl.get("fault")
                sim.proxy.fault_count = None


if __name__ == "__main__":
    sys.exit(main())
