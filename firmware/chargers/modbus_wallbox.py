# Modbus RTU wallboxes on the shared RS485 bus (firmware/modbus/bus.py owns the UART; these
# drivers only queue requests on it): the polling loop every one shares and the Heidelberg
# Energy Control. The EVSE-WB is in evse_wb.py (a site loads only the driver it uses).
#
# Heidelberg Energy Control (Amperfied), register table "EC_ModBus_register_table_20210222_LW"
# https://www.amperfied.de/wp-content/uploads/2023/03/EC_ModBus_register_table_20210222_LW.pdf
# (19200 baud 8E1 by default; addresses 0-based as on the wire):
#   input 4      register layout version (0x0108 for that table). Standby (258) and the
#                fail-safe current (262) came with 0x0108 (peer integrations mark them "v1.0.8+";
#                a 1.0.7 box answers "illegal data address" there): below 0x0108 a setup write
#                the box refuses so is skipped, from 0x0108 on it is an error.
#   input 5      charging state: 2 A1, 3 A2 (no vehicle), 4 B1, 5 B2 (connected), 6 C1, 7 C2
#                (charging), 8 derating, 9 E, 10 F, 11 error
#   input 6..8   L1..L3 current, 0.1 A rms
#   input 100    hardware maximum current, A
#   holding 257  Modbus watchdog timeout, ms (0 = off); when it runs out the box uses 262
#   holding 258  standby function control: 4 = standby disabled (the box keeps answering)
#   holding 261  maximal current command, 0.1 A (0 = pause, 60..160)
#   holding 262  fail-safe current, 0.1 A: used when the watchdog runs out
#
from micropython import const

from firmware.chargers.base import Charger, CHARGING_MA
from firmware.modbus.bus import ModbusException

_POLL_MS = const(1000)
_LAYOUT_108 = const(0x0108)   # the layout with standby (258) and fail-safe current (262)
_ILLEGAL_ADDRESS = const(2)   # Modbus exception code
_WATCHDOG_MS = const(30000)  # DOMAIN 4: chargers fall back when the manager is silent for 30 s


class ModbusCharger(Charger):
    """The polling loop; a subclass defines `async setup()` (once per (re)connect) and
    `async poll_once(now_ms)`."""

    def __init__(self, name, bus, slave=1, max_ma=32000, fallback_ma=0, poll_ms=_POLL_MS):
        super().__init__(name, max_ma)
        self.bus = bus
        self.slave = slave
        self.fallback_ma = fallback_ma
        self.poll_ms = poll_ms
        self._ready = False

    async def run(self, clock):
        while True:
            now = clock.ticks_ms()
            try:
                if not self._ready:
                    await self.setup()
                    self._ready = True
                await self.poll_once(now)
                self.seen(clock.ticks_ms())
            except Exception as e:  # noqa: BLE001 - timeouts, CRC, exceptions: retry next poll
                self._ready = False   # a box that rebooted needs its watchdog set again
                self.pushed_ma = -1
                self.failed(clock.ticks_ms(), "%s %s" % (type(e).__name__, e))
                await clock.sleep_ms(self.poll_ms)   # a dead box must not hog the shared bus
                continue
            await self.wait_poll(clock, self.poll_ms)


class HeidelbergCharger(ModbusCharger):
    kind = "heidelberg"
    has_meter = True
    state = 0           # the box's charging state (input 5), once read
    layout = 0          # its register layout version (input 4), once read

    def __init__(self, name, bus, slave=1, max_ma=16000, fallback_ma=0, poll_ms=_POLL_MS,
                 watchdog_ms=_WATCHDOG_MS):
        super().__init__(name, bus, slave, min(max_ma, 16000), fallback_ma, poll_ms)
        self.watchdog_ms = watchdog_ms

    async def setup(self):
        bus = self.bus
        s = self.slave
        self.layout = (await bus.read_input(s, 4, 1))[0]
        regs = await bus.read_input(s, 100, 1)
        hw_ma = regs[0] * 1000
        if 6000 <= hw_ma < self.max_ma:
            self.max_ma = hw_ma
        await self._configure(258, 4)                       # no standby: keep answering
        fb = self.fallback_ma // 100
        await self._configure(262, fb if fb >= 60 else 0)   # fail-safe current
        await self._configure(257, self.watchdog_ms)        # watchdog on

    async def _configure(self, addr, value):
        """Write a setup register; one an older layout does not have is skipped."""
        try:
            await self.bus.write_single(self.slave, addr, value)
        except ModbusException as e:
            if self.layout >= _LAYOUT_108 or e.code != _ILLEGAL_ADDRESS:
                raise

    async def poll_once(self, now_ms):
        bus = self.bus
        want = self.limit_ma // 100          # 0.1 A, rounded down (never above the allocation)
        if want < 60:
            want = 0
        sent = self.limit_ma
        await bus.write_single(self.slave, 261, want)   # also feeds the watchdog
        self.applied_ma = want * 100
        regs = await bus.read_input(self.slave, 5, 4)
        self.pushed_ma = sent      # only now: that state was read after the set-point
        st = regs[0]
        pc = self.phase_currents_ma
        pc[0] = regs[1] * 100
        pc[1] = regs[2] * 100
        pc[2] = regs[3] * 100
        self.state = st
        self.vehicle_connected = 4 <= st <= 8
        self.charging = st == 7 or st == 8 or max(pc[0], pc[1], pc[2]) > CHARGING_MA
