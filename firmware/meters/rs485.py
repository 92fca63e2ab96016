# RS485 meters: every slot whose meters/N/config has type 2 is read through the shared Modbus bus
# with its model's read plan (models.py + decode.py), and the values go to slot.update(). A meter
# that stops answering simply stops updating its slot, which goes stale after the slot's
# stale_timeout_s (the power manager then suspends PV control / DLM goes safe, DOMAIN 1, 2); when
# it answers again the next poll updates the slot: no restart needed.
import asyncio
from time import ticks_diff

from micropython import const

from firmware.meters import models
from firmware.meters.decode import Plan, decode_read, apply_signs
from firmware.meters.slots import TYPE_RS485
from firmware.modbus.errors import ModbusError, ModbusException

_SLOW_EVERY = const(10)     # voltages/energies: every 10th poll (and the first)
_IDLE_MS = const(500)       # nothing configured: look again this often
_ILLEGAL_ADDRESS = const(2)


def _internal_only(plan, rd):
    # True when the read only carries values that are not shown in the slot (phase powers).
    for idx, _, _, _ in rd.fields:
        if idx < plan.n_public:
            return False
    return True


class Rs485Meter:
    """One slot read over the bus."""

    def __init__(self, slot, cfg, bus):
        self.slot = slot
        self.cfg = cfg
        self.bus = bus
        self.plan = None
        self.model = None        # the table in use (after Eastron detection)
        self.polls = 0
        self.failures = 0
        self.last_error = None
        self.configure()

    def configure(self):
        c = self.cfg
        self.slave = c["slave_id"]
        self.wanted = c["model"]
        self.polls = 0
        self.last_error = None
        if self.wanted == models.EASTRON_AUTO:
            self.model = None  # detected on the first poll
            ids = models.value_ids("sdm630")
        else:
            self.model = self.wanted
            ids = models.value_ids(self.wanted)
        self.slot.set_value_ids(ids)
        self.plan = Plan(self.model, ids) if self.model else None
        self.dropped = []  # addresses the meter rejected (values it does not have)

    async def _detect(self):
        regs = await self.bus.read_holding(self.slave, models.EASTRON_CODE_REG, 1)
        code = regs[0]
        model = models.EASTRON_CODES.get(code)
        if model is None:
            raise ModbusError("unknown Eastron meter code 0x%X" % code)
        self.model = model
        self.plan = Plan(model, self.slot.value_ids)
        self.dropped = []

    async def poll(self, now_ms_fn):
        """Read every request of the plan; update the slot only when all succeeded."""
        if self.plan is None:
            await self._detect()
        plan = self.plan
        bus = self.bus
        slow_due = self.polls % _SLOW_EVERY == 0
        note = None
        reads = plan.reads
        i = 0
        while i < len(reads):  # by index: split() and drop() change the list
            rd = reads[i]
            if rd.slow and not slow_due:
                i += 1
                continue
            try:
                if rd.fc == 3:
                    regs = await bus.read_holding(self.slave, rd.addr, rd.count)
                else:
                    regs = await bus.read_input(self.slave, rd.addr, rd.count)
            except ModbusException as e:
                if self.plan is not plan:
                    return
                if e.code == _ILLEGAL_ADDRESS and len(rd.fields) > 1:
                    # Some register inside the merged range is missing on this meter (a variant,
                    # a minimal simulator): read its values one by one (now and from now on).
                    plan.split(rd)
                    continue
                if e.code == _ILLEGAL_ADDRESS and (rd.slow or _internal_only(plan, rd)):
                    # A value this meter does not have: voltages/energies, or the phase power
                    # that only gives a current its sign. It stays null; the reading counts.
                    plan.drop(rd)
                    self.dropped.append(rd.addr)
                    continue
                if not rd.slow:
                    raise
                note = "slow read 0x%X: exception %d" % (rd.addr, e.code)
                for idx, _, _, _ in rd.fields:
                    plan.values[idx] = None
                i += 1
                continue
            if self.plan is not plan:
                return  # reconfigured while we waited: this reading belongs to the old model
            decode_read(plan, rd, regs)  # before the next await: regs is the bus's buffer
            i += 1
        apply_signs(plan)
        self.slot.update(plan.values, now_ms_fn())
        self.polls += 1
        self.last_error = note

    def state(self):
        """Extra keys of meters/N/state."""
        st = self.bus.stats(self.slave)
        return {"model": self.model or self.wanted, "slave_id": self.slave,
                "requests": st.requests, "timeouts": st.timeouts, "crc_errors": st.crc_errors,
                "frame_errors": st.frame_errors, "exceptions": st.exceptions,
                "last_exception": st.last_exception, "failed_polls": self.failures,
                "last_error": self.last_error, "missing_registers": self.dropped,
                "port_error": self.bus.port_error}


class Rs485Poller:
    """The task reading all RS485 slots in turn, every poll_interval_ms."""

    def __init__(self, app, bus, bus_cfg):
        self.app = app
        self.bus = bus
        self.bus_cfg = bus_cfg
        self.meters = {}   # slot index -> Rs485Meter
        self.cycles = 0

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
            wait = self.bus_cfg["poll_interval_ms"] - ticks_diff(clock.ticks_ms(), start)
            # Always yield a little: a silent bus must not starve other tasks.
            await clock.sleep_ms(wait if wait > 1 else 1)


def _model_check(prev_check):
    def check(v):
        err = prev_check(v) if prev_check else None
        if err:
            return err
        if v["type"] == TYPE_RS485 and v["model"] not in models.MODEL_NAMES:
            return "Key 'model' has unknown meter model '%s': known are %s" % (
                v["model"], ", ".join(models.MODEL_NAMES))
        return None
    return check


def install(app):
    """Subsystem hook (firmware/app.py): RS485 meters in every slot of type 2."""
    from firmware.modbus.install import get_bus
    bus = get_bus(app)
    poller = Rs485Poller(app, bus, app.modbus_config)
    app.rs485_meters = poller
    for slot in app.slots:
        cfg = app.configs["meters/%d/config" % slot.index]
        cfg.check = _model_check(cfg.check)

        def changed(c, slot=slot):
            poller.slot_changed(c, slot)
        cfg.subscribe(changed)
        if cfg["type"] == TYPE_RS485 and cfg["model"] in models.MODEL_NAMES:
            poller.slot_changed(cfg, slot)
    return (poller.run(),)
