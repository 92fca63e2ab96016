"""Modbus RTU wallbox emulators for tests (CPython, pymodbus 3.16): Heidelberg Energy Control and
EVSE-WB register maps (sources cited in firmware/chargers/modbus_wallbox.py and evse_wb.py), with
a car that draws what the box offers and the boxes' fallback behaviour (Heidelberg watchdog ->
fail-safe current; EVSE-WB amps-after-boot on a power cycle).

Time is injectable (`skew_s`): tests move the emulator's clock instead of sleeping.

    python tools/wallbox_sim.py /dev/pts/7 --heidelberg 1 --evse-wb 2
"""
import argparse
import os
import sys
import asyncio
import logging
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loop_thread import LoopThread  # noqa: E402


class Heidelberg:
    """Layout 0x0108 (the register table of 2021-02-22). Below it, the standby (258) and
    fail-safe current (262) registers are missing: the Heidelberg peer integration marks
    watchdog/fail-safe and standby "v1.0.8+", and a 1.0.7 box's 257..262 cannot be read as one
    block (wbec issue 3); writes there answer "illegal data address" (docs/chargers-audit.md)."""
    kind = "heidelberg"
    LAYOUT_108 = 0x0108

    def __init__(self):
        self.layout = 0x0108
        self.state = 7              # C2: charging
        self.hw_max_a = 16
        self.watchdog_ms = 15000    # the box's default
        self.standby = 0
        self.remote_lock = 1
        self.max_cmd = 160          # 0.1 A
        self.failsafe = 0
        self.draw_pct = 95
        self.skew_s = 0.0
        self.last_write = time.monotonic()
        self.writes = []            # (addr, value)

    def now(self):
        return time.monotonic() + self.skew_s

    def offered(self):
        """The current the box offers now (0.1 A): the command, or the fail-safe current once
        the watchdog ran out."""
        if self.watchdog_ms and (self.now() - self.last_write) * 1000 > self.watchdog_ms:
            return self.failsafe
        return self.max_cmd

    def currents(self):
        off = self.offered()
        if self.state not in (6, 7) or off < 60:
            return [0, 0, 0]
        return [off * self.draw_pct // 100] * 3

    def hold(self):
        return {257: self.watchdog_ms, 258: self.standby, 259: self.remote_lock, 260: 0,
                261: self.max_cmd, 262: self.failsafe}

    def inputs(self):
        st = self.state
        if st in (6, 7):
            st = 7 if self.offered() >= 60 else 6
        c = self.currents()
        return {4: self.layout, 5: st, 6: c[0], 7: c[1], 8: c[2], 100: self.hw_max_a, 101: 6}

    def has(self, addr):
        """A holding register this layout knows."""
        return self.layout >= self.LAYOUT_108 or addr not in (258, 262)

    def write(self, addr, value):
        self.writes.append((addr, value))
        self.last_write = time.monotonic() + self.skew_s
        if addr == 257:
            self.watchdog_ms = value
        elif addr == 258:
            self.standby = value
        elif addr == 261:
            if value != 0 and not 60 <= value <= 160:
                return False
            self.max_cmd = value
        elif addr == 262:
            if value != 0 and not 60 <= value <= 160:
                return False
            self.failsafe = value
        elif addr == 259:
            self.remote_lock = value
        else:
            return False
        return True

    ranges = {"h": [(257, 6)], "i": [(4, 5), (100, 2)]}


class EvseWb:
    """EVSE-WB: writes with function 16 only (every peer driver writes so: evcc simpleevse.go,
    openWB evse.py, SimpleEVSE-WiFi; function 06 is refused here so the firmware sticks to what
    is known to work). Holding 2005 bit 7 switches the amps registers to 0.01 A (openWB's
    PRECISE_CURRENT_BIT, SimpleEVSE-WiFi's "high resolution"; set by those controllers)."""
    kind = "evse_wb"
    fcs_write = (16,)
    HIGH_RES = 0x80

    def __init__(self):
        self.amps = 0               # in the board's unit: A, or 0.01 A with HIGH_RES
        self.vehicle = 3            # charging
        self.after_boot = 16
        self.reg2005 = 0x20         # bit 5: clear an RCD error (a typical setting)
        self.skew_s = 0.0
        self.writes = []

    def unit_ca(self):
        """The amps registers' unit in 0.01 A."""
        return 1 if self.reg2005 & self.HIGH_RES else 100

    def power_cycle(self):
        self.amps = self.after_boot

    def hold(self):
        on = self.amps * self.unit_ca() >= 600
        out = self.amps if self.vehicle in (3, 4) and on else 0
        evse = 2 if on else 1
        regs = {1000: self.amps, 1001: out, 1002: self.vehicle if on or
                self.vehicle != 3 else 2, 1003: 32, 1004: 0, 1005: 18, 1006: evse}
        for a in range(2000, 2010):
            regs[a] = 0
        regs[2000] = self.after_boot
        regs[2002] = 5
        regs[2005] = self.reg2005
        return regs

    def inputs(self):
        return {}

    def write(self, addr, value):
        self.writes.append((addr, value))
        top = 80 * 100 // self.unit_ca()
        if addr == 1000:
            if value > top:
                return False
            self.amps = value
        elif addr == 2000:
            if value > top:
                return False
            self.after_boot = value
        elif addr == 2005:
            self.reg2005 = value
        elif 1000 <= addr <= 1006 or 2000 <= addr <= 2009:
            pass
        else:
            return False
        return True

    ranges = {"h": [(1000, 7), (2000, 10)], "i": [(0, 1)]}


def _device(slave, box):
    from pymodbus.constants import ExcCodes
    from pymodbus.simulator import SimData, SimDevice
    from pymodbus.simulator.simutils import DataType
    hr = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
          for a, n in box.ranges["h"]]
    ir = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
          for a, n in box.ranges["i"]]
    bits = [SimData(address=0, count=1, values=False, datatype=DataType.BITS)]

    async def action(fc, start, address, count, registers, values):
        if fc in (6, 16) and fc not in getattr(box, "fcs_write", (6, 16)):
            return ExcCodes.ILLEGAL_FUNCTION
        if fc in (6, 16) and values:
            has = getattr(box, "has", None)
            if has is not None and not all(has(address + i) for i in range(len(values))):
                return ExcCodes.ILLEGAL_ADDRESS
            for i, v in enumerate(values):
                if not box.write(address + i, v):
                    return ExcCodes.ILLEGAL_VALUE
            return None
        # Reads, and pymodbus' read-back after a write (fc 6/16 without values).
        img = box.inputs() if fc == 4 else box.hold()
        for a in range(address, address + count):
            if a in img:
                registers[a - start] = img[a]
        return None

    return SimDevice(id=slave, simdata=(bits, list(bits), hr, ir), action=action)


class WallboxServer(LoopThread):
    """pymodbus RTU server on `port` (one end of a socat pty pair), in its own thread."""

    def __init__(self, port, boxes, baud=19200):
        self.port = port
        self.boxes = boxes   # {slave: Heidelberg() | EvseWb()}
        self.baud = baud
        self.init_loop_thread()

    async def _main(self):
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusSerialServer
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        devices = [_device(s, b) for s, b in sorted(self.boxes.items())]
        server = ModbusSerialServer(devices, framer=FramerType.RTU, port=self.port,
                                    baudrate=self.baud, ignore_missing_devices=True)
        # A real RS485 slave with another id stays silent (pymodbus would answer exception 4).
        from meter_sim import _silence_unknown_ids
        _silence_unknown_ids(server)
        self._stop_ev = asyncio.Event()
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.3)
        self._ready.set()
        await self._stop_ev.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await server.shutdown()
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port")
    ap.add_argument("--heidelberg", type=int, action="append", default=[])
    ap.add_argument("--evse-wb", type=int, action="append", default=[])
    ap.add_argument("--baud", type=int, default=19200)
    a = ap.parse_args(argv)
    boxes = {s: Heidelberg() for s in a.heidelberg}
    boxes.update({s: EvseWb() for s in a.evse_wb})
    WallboxServer(a.port, boxes, a.baud).start()
    print("wallboxes on %s: %s" % (a.port, {s: b.kind for s, b in boxes.items()}))
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
