# RS485 meters: every slot whose meters/N/config has type 2 is read through the shared Modbus bus
# with its model's read plan (models.py + decode.py), and the values go to slot.update(). A meter
# that stops answering simply stops updating its slot, which goes stale after the slot's
# stale_timeout_s (the power manager then suspends PV control / DLM goes safe, DOMAIN 1, 2); when
# it answers again the next poll updates the slot: no restart needed.
#
# Imported by firmware/meters/rs485.py when the first slot becomes an RS485 meter (with the
# tables, the planner and the bus), so a board without one does not carry this code.
import asyncio
from time import ticks_diff

from micropython import const

from firmware.meters import models
from firmware.meters.decode import Plan, decode_field
from firmware.meters.slots import TYPE_RS485
from firmware.modbus.errors import ModbusError, ModbusException
from firmware.modbus.install import get_bus

_SLOW_EVERY = const(10)     # voltages/energies: every 10th poll (and the first)
_IDLE_MS = const(500)       # nothing configured: look again this often
_ILLEGAL_ADDRESS = const(2)


class Rs485Meter:
    """One slot read over the bus."""

    def __init__(self, slot, cfg, bus):
        self.slot = slot
        self.cfg = cfg
        self.bus = bus
        self.failures = 0
        self.configure()

    def configure(self):
        c = self.cfg
        self.slave = c["slave_id"]
        self.wanted = c["model"]
        self.polls = 0
        self.last_error = None
        # The table in use: after Eastron detection (first poll) for "eastron".
        self.model = None if self.wanted == models.EASTRON_AUTO else self.wanted
        ids = models.value_ids(self.model or "sdm630")
        self.slot.set_value_ids(ids)
        self.plan = Plan(self.model, ids) if self.model else None
        self.dropped = []  # addresses the meter rejected (values it does not have)

    async def poll(self, now_ms_fn):
        """Read every request of the plan; update the slot only when all succeeded."""
        bus = self.bus
        if self.plan is None:  # "eastron": the meter code picks the table
            code = (await bus.read_holding(self.slave, models.EASTRON_CODE_REG, 1))[0]
            model = models.EASTRON_CODES.get(code)
            if model is None:
                raise ModbusError("unknown Eastron meter code 0x%X" % code)
            self.model = model
            self.plan = Plan(model, self.slot.value_ids)
            self.dropped = []
        plan = self.plan
        vals = plan.values
        slow_due = self.polls % _SLOW_EVERY == 0
        note = None
        reads = plan.reads
        i = 0
        while i < len(reads):  # by index: splitting and dropping change the list
            rd = reads[i]
            f = rd.fields  # output index, offset, encoding, scale index; four per value
            if rd.slow and not slow_due:
                i += 1
                continue
            try:
                regs = await bus.read_input(self.slave, rd.addr, rd.count, plan.fc)
            except ModbusException as e:
                if self.plan is not plan:
                    return
                if e.code == _ILLEGAL_ADDRESS and len(f) > 4:
                    # Some register inside the merged range is missing on this meter (a variant,
                    # a minimal simulator): read its values one by one (now and from now on).
                    plan.split(rd)
                    continue
                if e.code == _ILLEGAL_ADDRESS and (rd.slow or all(
                        f[j] >= plan.n_public for j in range(0, len(f), 4))):
                    # A value this meter does not have: voltages/energies, or the phase power
                    # that only gives a current its sign (not shown in the slot). It stays null;
                    # the reading counts.
                    reads.remove(rd)
                    for j in range(0, len(f), 4):
                        vals[f[j]] = None
                    self.dropped.append(rd.addr)
                    continue
                if not rd.slow:
                    raise
                note = "slow read 0x%X: exception %d" % (rd.addr, e.code)
                for j in range(0, len(f), 4):
                    vals[f[j]] = None
                i += 1
                continue
            if self.plan is not plan:
                return  # reconfigured while we waited: this reading belongs to the old model
            # Decoded before the next await: regs is the bus's buffer.
            for j in range(0, len(f), 4):
                vals[f[j]] = decode_field(regs, f[j + 1], f[j + 2], models.SCALES[f[j + 3]])
            i += 1
        # Currents as signed values: magnitude from the current register, sign from the phase
        # power (negative = export), since most meters give magnitudes only.
        for ci, pi in plan.sign:
            c = vals[ci]
            p = vals[pi]
            if c is not None and p is not None:
                c = abs(c)
                vals[ci] = -c if p < 0 else c
        self.slot.update(vals, now_ms_fn())
        self.polls += 1
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


class Rs485Poller:
    """The task reading all RS485 slots in turn, every poll_interval_ms. Created, and its task
    started, by firmware/meters/rs485.py when the first slot becomes an RS485 meter."""

    def __init__(self, app):
        self.app = app
        self.bus = get_bus(app)
        self.meters = {}   # slot index -> Rs485Meter
        self.cycles = 0
        asyncio.create_task(self.run())  # before asyncio.run() too: see get_bus

    def slot_changed(self, cfg, slot):
        st = self.app.registry.get_object("meters/%d/state" % slot.index)
        if cfg["type"] == TYPE_RS485:
            m = self.meters.get(slot.index)
            if m is None:
                m = self.meters[slot.index] = Rs485Meter(slot, cfg, self.bus)
            else:
                m.configure()
            st.extra = m.state
        elif slot.index in self.meters:
            del self.meters[slot.index]
            st.extra = None

    async def run(self):
        clock = self.bus.clock  # real time: the poll rate is a bus property
        now_fn = self.app.clock.ticks_ms
        bus_cfg = self.app.modbus_config
        while True:
            start = clock.ticks_ms()
            if not self.meters:
                await clock.sleep_ms(_IDLE_MS)
                continue
            for m in list(self.meters.values()):
                try:
                    await m.poll(now_fn)
                except ModbusError as e:
                    m.failures += 1
                    m.last_error = "%s: %s" % (type(e).__name__, e)
                except Exception as e:  # noqa: BLE001 - a bug must not stop every meter
                    m.failures += 1
                    m.last_error = "internal error: %r" % (e,)
            self.cycles += 1
            wait = bus_cfg["poll_interval_ms"] - ticks_diff(clock.ticks_ms(), start)
            # Always yield a little: a silent bus must not starve other tasks.
            await clock.sleep_ms(wait if wait > 1 else 1)
