# The EVSE-WB / SimpleEVSE-WB DIN boards on the shared RS485 bus (the polling loop:
# modbus_wallbox.py). Manual "evse-wb-din_Manual"
# https://files.ev-power.eu/inc/_doc/attach/StoItem/4418/evse-wb-din_Manual.pdf (9600 8N1):
#   holding 1000 configured amps, A (volatile; 0 = no charging)
#   holding 1001 amps output, A
#   holding 1002 vehicle state: 1 ready (A), 2 EV present (B), 3 charging (C), 4 C with
#                ventilation, 5 failure
#   holding 1006 EVSE state: 1 steady 12 V, 2 PWM, 3 off
#   holding 2000 default amps after boot, A (persistent): the board's only fallback
#   holding 2005 configuration bits (persistent); bit 7 puts the amps registers in 0.01 A
#                ("high resolution": openWB's evse.py PRECISE_CURRENT_BIT, SimpleEVSE-WiFi)
# Writes use function 16, as every peer driver does (evcc simpleevse.go, openWB, SimpleEVSE-WiFi;
# none uses 06). The EVSE-WB has no communication watchdog register in that manual: a dead
# controller leaves it at its last set-point until the board restarts (then 2000). We write
# 2000 = fallback current at start so at least a power cycle ends in the safe current; see
# docs/chargers.md and docs/chargers-audit.md.
from micropython import const

from firmware.chargers.modbus_wallbox import ModbusCharger

_HIGH_RES = const(0x80)   # holding 2005 bit 7: amps registers in 0.01 A


class EvseWbCharger(ModbusCharger):
    """EvseWbCharger(name, bus, slave=1, max_ma=32000, fallback_ma=0, poll_ms=1000)."""
    kind = "evse_wb"
    state = 0           # the board's vehicle state (holding 1002), once read

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._one = [0]   # the value of a one-register function-16 write (no list per poll)

    async def setup(self):
        bus = self.bus
        s = self.slave
        one = self._one
        # 2000..2009 are kept in the board's EEPROM: written only when they differ (setup runs
        # again after every lost answer).
        regs = await bus.read_holding(s, 2000, 6)
        after_boot = regs[0]
        cfg = regs[5]
        # A board another controller switched to 0.01 A would take 16 as 0.16 A and report
        # 16 A as 1600: back to whole amps.
        if cfg & _HIGH_RES:
            one[0] = cfg & ~_HIGH_RES
            await bus.write_multiple(s, 2005, one)
        fb = self.fallback_ma // 1000
        fb = fb if fb >= 6 else 0
        if after_boot != fb or cfg & _HIGH_RES:
            one[0] = fb
            await bus.write_multiple(s, 2000, one)

    async def poll_once(self, now_ms):
        bus = self.bus
        want = self.limit_ma // 1000         # whole A, rounded down
        if want < 6:
            want = 0
        sent = self.limit_ma
        self._one[0] = want
        await bus.write_multiple(self.slave, 1000, self._one)
        regs = await bus.read_holding(self.slave, 1000, 7)
        self.pushed_ma = sent      # only now: that state was read after the set-point
        out_a = regs[1]
        st = regs[2]
        self.applied_ma = regs[0] * 1000
        self.state = st
        self.vehicle_connected = st in (2, 3, 4)
        self.charging = st in (3, 4)
        # No meter: assume it draws what it offers on every phase (conservative for DLM).
        est = out_a * 1000 if self.charging else 0
        pc = self.phase_currents_ma
        pc[0] = pc[1] = pc[2] = est
