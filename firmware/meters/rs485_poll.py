# RS485 meters: every slot whose meters/N/config has type 2 is read through the shared Modbus bus
# with its model's read plan, and the values go to slot.update(). A meter that stops answering
# simply stops updating its slot, which goes stale after the slot's stale_timeout_s (the power
# manager then suspends PV control / DLM goes safe, DOMAIN 1, 2); when it answers again the next
# poll updates the slot: no restart needed.
#
# Imported (by rs485_setup.py) when the first slot becomes an RS485 meter, with the bus, so a
# board without one does not carry this code. Only the polling lives here: configuration, the
# read plan, its changes and the Eastron detection are rs485_setup.py's, imported for the call
# and dropped.
import asyncio
import struct
from time import ticks_diff

from micropython import const

from firmware import call_once
from firmware.modbus.bus import ModbusError, ModbusException

_SETUP = "firmware.meters.rs485_setup"
_SLOW_EVERY = const(10)     # voltages/energies: every 10th poll (and the first)
_IDLE_MS = const(500)       # nothing configured: look again this often
_ILLEGAL_ADDRESS = const(2)
_ILLEGAL_VALUE = const(3)
# A read of the plan (plan.py): [addr, count, slow, then per value: output index, register
# offset, encoding, scale].
_FIELDS = const(3)
# Encodings, as models.py numbers them (models.py is not kept loaded).
_F32 = const(0)
_S32L = const(1)
_U32 = const(2)
_S32 = const(3)
_U64 = const(4)
# The poll counters wrap below 2**30: above it an int is a heap object on the ESP32 (every count
# would allocate after ~1.7 years of 50 ms polls; docs/uptime-audit.md).
_COUNT_MASK = const(0x3FFFFFFF)


class Rs485Meter:
    """One slot read over the bus. Settings and read plan (slave, model, fc, reads, n_public,
    sign, values, ...): rs485_setup.configure()."""

    def __init__(self, slot, cfg, bus):
        self.slot = slot
        self.cfg = cfg
        self.bus = bus
        self.failures = 0
        call_once(_SETUP, "configure", self)

    async def poll(self, now_ms_fn):
        """Read every request of the plan; update the slot only when all succeeded."""
        bus = self.bus
        if self.reads is None:
            # First a setup register (rs485_setup.configure's probe_reg): the Eastron meter code
            # picks the table; the EM24's application, the EM3xx/EM5xx measurement mode decide
            # whether the meter shows export as negative power at all. Read each poll until
            # rs485_setup.adopt accepts it (it raises with the reason until then).
            try:
                v = (await bus.read_holding(self.slave, self.probe_reg, 1))[0]
            except ModbusException as e:
                if e.code != _ILLEGAL_ADDRESS:
                    raise
                v = None  # a variant without that register
            if self.reads is not None:
                return  # reconfigured while we waited
            call_once(_SETUP, "adopt", self, v)
        reads = self.reads
        vals = self.values
        slow_due = self.polls % _SLOW_EVERY == 0
        note = None
        i = 0
        while i < len(reads):  # by index: splitting and dropping change the list
            rd = reads[i]
            addr = rd[0]
            if rd[2] and not slow_due:
                i += 1
                continue
            try:
                regs = await bus.read_input(self.slave, addr, rd[1], self.fc)
            except ModbusException as e:
                if self.reads is not reads:
                    return  # reconfigured while we waited
                merged = len(rd) > _FIELDS + 4
                if (e.code == _ILLEGAL_ADDRESS and (merged or rd[2]
                                                    or rd[_FIELDS] >= self.n_public)
                        or e.code == _ILLEGAL_VALUE and merged):
                    # A register this meter does not have (a variant, a minimal simulator), or
                    # a merged read longer than it accepts (exception 3, as the EM24 answers
                    # above 11 registers; the EM340, DTSU666 and ABB documents found give no
                    # limit, docs/meters-audit.md): a merged read is split, an optional value
                    # dropped (rs485_setup.missing). Index i is looked at again.
                    call_once(_SETUP, "missing", self, i)
                    continue
                if not rd[2]:
                    raise
                note = "slow read 0x%X: exception %d" % (addr, e.code)
                for j in range(_FIELDS, len(rd), 4):
                    vals[rd[j]] = None
                i += 1
                continue
            if self.reads is not reads:
                return  # reconfigured while we waited: this reading belongs to the old model
            # Decoded before the next await: regs is the bus's buffer.
            for j in range(_FIELDS, len(rd), 4):
                vals[rd[j]] = decode_field(regs, rd[j + 1], rd[j + 2], rd[j + 3])
            i += 1
        # Currents as signed values: magnitude from the current register, sign from the phase
        # power (negative = export), since most meters give magnitudes only.
        for ci, pi in self.sign:
            c = vals[ci]
            p = vals[pi]
            if c is not None and p is not None:
                c = abs(c)
                vals[ci] = -c if p < 0 else c
        self.slot.update(vals, now_ms_fn())
        self.polls = (self.polls + 1) & _COUNT_MASK
        self.last_error = note

    def failed(self, note):
        """A poll that did not update the slot."""
        self.failures = (self.failures + 1) & _COUNT_MASK
        self.last_error = note

    def state(self):
        """Extra keys of meters/N/state."""
        st = self.bus.stats(self.slave)
        st["model"] = self.model or self.wanted
        st["slave_id"] = self.slave
        del st["ok"]
        del st["retries"]
        st["failed_polls"] = self.failures
        st["last_error"] = self.last_error
        st["missing_registers"] = self.dropped
        st["port_error"] = self.bus.port_error
        return st


_buf4 = bytearray(4)


def decode_field(regs, off, enc, scale):
    """One value from the registers of an answer, or None for the meter's 'invalid' marker."""
    hi = regs[off]
    lo = regs[off + 1]
    if enc == _F32:
        b = _buf4
        b[0] = hi >> 8
        b[1] = hi & 0xFF
        b[2] = lo >> 8
        b[3] = lo & 0xFF
        v = struct.unpack(">f", b)[0]
        if v != v or v in (float("inf"), float("-inf")):
            return None
        return v * scale if scale != 1.0 else v
    if enc == _S32L:
        u = (lo << 16) | hi
        if u & 0x80000000:
            u -= 0x100000000
        return u * scale
    if enc == _U32:
        u = (hi << 16) | lo
        if u == 0xFFFFFFFF:
            return None
        return u * scale
    if enc == _S32:
        u = (hi << 16) | lo
        if u == 0x7FFFFFFF:
            # ABB's "not available" for a signed 32-bit value is the maximum, 0x7FFFFFFF (its
            # unsigned types use all ones); 0xFFFFFFFF is -1, e.g. -0.01 W (docs/meters-audit.md).
            return None
        if u & 0x80000000:
            u -= 0x100000000
        return u * scale
    # U64
    u = (hi << 48) | (lo << 32) | (regs[off + 2] << 16) | regs[off + 3]
    if u == 0xFFFFFFFFFFFFFFFF:
        return None
    return u * scale


async def run(app, bus, meters):
    """Read every RS485 slot in turn, every poll_interval_ms."""
    clock = bus.clock  # real time: the poll rate is a bus property
    now_fn = app.clock.ticks_ms
    bus_cfg = app.modbus_config
    while True:
        start = clock.ticks_ms()
        if not meters:
            await clock.sleep_ms(_IDLE_MS)
            continue
        for m in list(meters.values()):
            try:
                await m.poll(now_fn)
            except ModbusError as e:
                m.failed("%s: %s" % (type(e).__name__, e))
            except Exception as e:  # noqa: BLE001 - a bug must not stop every meter
                m.failed("internal error: %r" % (e,))
        wait = bus_cfg["poll_interval_ms"] - ticks_diff(clock.ticks_ms(), start)
        # Always yield a little: a silent bus must not starve other tasks.
        await clock.sleep_ms(wait if wait > 1 else 1)
