# RS485 meters, the configuration side: a slot becoming (or ceasing to be) an RS485 meter, a
# meter's read plan (plan.py from the tables in models.py), the Eastron model detection, and the
# plan's changes when a meter lacks a register.
# Needed only on a config change or a detection, so rs485.py and rs485_poll.py import this module
# for the call and drop it after (call_once), together with the planner and the tables: what a
# meter keeps is plain data (the plan: lists of ints). The polling itself is rs485_poll.py.
import asyncio

from micropython import const

from firmware import call_once, forget
from firmware.meters.slots import TYPE_RS485
from firmware.meters.rs485_poll import Rs485Meter, run
from firmware.modbus.bus import ModbusError

# A read of the plan (plan.py): [addr, count, slow, then per value: output index, register
# offset, encoding, scale]; encodings as models.py numbers them.
_FIELDS = const(3)
_U64 = const(4)
# "eastron": the model the meter code (holding register 0xFC02) names.
_EASTRON_AUTO = "eastron"
_EASTRON_CODES = {0x70: "sdm630", 0x79: "sdm630", 0x89: "sdm72dm2"}
# The holding register read before the first measurement (rs485_poll), by configured model:
# the Eastron meter code; the EM24's "application" (only H, 7, shows export as negative W: EM24-DIN
# communication protocol table 2.9-2, Victron dbus-cgwacs); the EM340/EM540's measurement mode
# (only b = 1 and C = 2 show export negative, not A = 0, "easy connection": Victron dbus-cgwacs).
# docs/meters-audit.md.
_PROBES = {_EASTRON_AUTO: 0xFC02, "em24": 0x1101, "em340": 0x1103}
_EM24_APPLICATION_H = const(7)
_EM3XX_MODE_A = const(0)


def _plan(model, ids=None):
    """plan.plan(), the planner and its tables dropped after (their heap comes back)."""
    try:
        return call_once("firmware.meters.plan", "plan", model, ids)
    finally:
        forget("firmware.meters.models")


def configure(m):
    """(Re)read meter m's settings from its meters/N/config and make its read plan."""
    c = m.cfg
    m.slave = c["slave_id"]
    m.wanted = c["model"]
    m.polls = 0
    m.last_error = None
    m.dropped = []  # addresses the meter rejected (values it does not have)
    # The table in use: after Eastron detection (first poll) for "eastron".
    m.model = None if m.wanted == _EASTRON_AUTO else m.wanted
    ids, m.fc, reads, n, m.n_public, m.sign = _plan(m.model or "sdm630")
    m.slot.set_value_ids(ids)
    m.values = [None] * n
    # A model with a probe register starts with reads None: rs485_poll reads the register first
    # and adopt() sets the reads (the plan waits in m.planned).
    m.probe_reg = _PROBES.get(m.wanted)
    m.planned = reads if m.model else None
    m.reads = None if m.probe_reg else reads


def adopt(m, value):
    """The meter answered `value` (None: "illegal data address") to its probe register. Either
    the reads are set (polling starts) or ModbusError says why this meter's readings would be
    wrong: the slot is not updated (it goes stale, PV control is suspended) and the reason shows
    in meters/N/state.last_error; the probe is read again at the next poll."""
    if m.wanted == _EASTRON_AUTO:
        # The meter code picks the table for the value ids the slot already has.
        model = _EASTRON_CODES.get(value)
        if model is None:
            raise ModbusError("unknown Eastron meter code %s" % (
                "(none)" if value is None else "0x%X" % value))
        _, m.fc, reads, n, m.n_public, m.sign = _plan(model, m.slot.value_ids)
        m.model = model
        m.values = [None] * n
        m.reads = reads
        m.dropped = []
        return
    # A meter without the register (an older firmware) is read as it is.
    if value is not None:
        if m.wanted == "em24" and value != _EM24_APPLICATION_H:
            raise ModbusError("EM24 application %s (register 0x1101 = %d): only application H "
                              "shows export as negative power; set H on the meter (PFA models "
                              "cannot: use a PFB or X model)"
                              % ("ABCDEFGH"[value] if value < 8 else "?", value))
        if m.wanted == "em340" and value == _EM3XX_MODE_A:
            raise ModbusError("EM340/EM540 measurement mode A (register 0x1103 = 0) does not "
                              "show export as negative power; set mode b on the meter")
    m.reads = m.planned
    m.planned = None


def missing(m, i):
    """The meter answered read i of its plan with "illegal data address", or a merged read with
    "illegal data value" (rs485_poll.py checked that the plan can change): a merged read is split
    into one read per value (now and from now on); a single value the meter does not have is dropped when it is optional (a voltage or
    energy, or the phase power that only gives a current its sign, not shown in the slot): it
    stays null and the reading counts."""
    reads = m.reads
    rd = reads[i]
    if len(rd) > _FIELDS + 4:
        reads[i:i + 1] = [[rd[0] + rd[j + 1], 4 if rd[j + 2] == _U64 else 2, rd[2], rd[j], 0,
                           rd[j + 2], rd[j + 3]] for j in range(_FIELDS, len(rd), 4)]
        return
    del reads[i]
    for j in range(_FIELDS, len(rd), 4):
        m.values[rd[j]] = None
    m.dropped.append(rd[0])


def slot_changed(app, cfg, slot):
    """Listener of every meters/N/config (via rs485.py). The first RS485 slot starts the task
    reading all of them in turn (rs485_poll.run); app.rs485_meters: {slot index: Rs485Meter}."""
    meters = app.rs485_meters
    if meters is None:
        meters = app.rs485_meters = {}
        # install.py's get_bus makes the bus; the module itself is not kept (call_once).
        bus = app.modbus_bus or call_once("firmware.modbus.install", "get_bus", app)
        # Also right when called before asyncio.run() (a meter in the saved config): on
        # MicroPython a task created then waits in the queue and starts with the loop.
        asyncio.create_task(run(app, bus, meters))
    # The slot is its meters/N/state object: `extra` adds the meter's counters.
    if cfg["type"] == TYPE_RS485:
        m = meters.get(slot.index)
        if m is None:
            m = meters[slot.index] = Rs485Meter(slot, cfg, app.modbus_bus)
        else:
            configure(m)
        slot.extra = m.state
    elif slot.index in meters:
        del meters[slot.index]
        slot.extra = None
