# The charge manager's rare paths: setup at boot, validation of charge_manager/config 'chargers',
# and the reaction to a config change (chargers rebuilt, contactor and DLM set up, the power
# manager's charger limits). manager.py imports this module for one call and drops it again
# (manager._config_call), so none of it stays in RAM between config changes. Nothing defined
# here may outlive the call (a function kept alive would keep this whole module alive).
import asyncio

from micropython import const

from firmware import call_once
from firmware.api.config import ConfigObject, Field, BOOL, INT, STR
from firmware.chargers.manager import BUS_TYPES, ChargeManager, ChargersField, ContactorReset, \
    check_cm, contactor_state
from firmware.meters.slots import TYPE_RS485

_MAX_CHARGERS = const(16)     # == control.charge_alloc.MAX_CHARGERS
_KEYS = ("name", "type", "host", "address", "max_current", "min_current")
# Built-in charger types; app.charger_factories maps further ones (the simulator's) to a
# factory fn(app, entry).
_BUILT_IN = ("warp_http", "heidelberg", "evse_wb")


def install(app):
    factories = getattr(app, "charger_factories", None)
    if factories is None:
        factories = app.charger_factories = {}
    for t in _BUILT_IN:
        factories.setdefault(t, None)
    m = app.charge_manager = ChargeManager(app)
    chargers = ChargersField("chargers", None, [])
    chargers.types = factories
    chargers.slots = app.slots
    cfg = app._add_config(ConfigObject("charge_manager/config", [
        chargers,
        # The maximum total current all chargers together may draw per phase (the supply line);
        # 0 = not configured (config_error_flags bit 2).
        Field("maximum_available_current", INT, 0, 0, 1000000),
        Field("minimum_current", INT, 6000, 6000, 32000),      # per charger, 3p
        Field("minimum_current_1p", INT, 6000, 6000, 32000),   # per charger, 1p
        # What a Modbus wallbox uses by itself when this controller stops talking to it
        # (Heidelberg watchdog, EVSE-WB amps after boot): 0 = stop, else 6000..32000.
        Field("fallback_current", INT, 0, 0, 32000),
    ], app.store, check_cm))
    ccfg = app._add_config(ConfigObject("power_manager/contactor_config", [
        Field("contactor_installed", BOOL, False),
        Field("relay_pin", STR, "contactor", lo=1, hi=24),
        Field("feedback_pin", STR, "", hi=24),          # "" = no auxiliary contact wired
        Field("cp_off_time_s", INT, 60, 10, 120),       # DOMAIN 3: some cars need ~45 s
        Field("min_switch_interval_s", INT, 30, 10, 3600),
    ], app.store))
    reg = app.registry
    reg.add(cfg.name, cfg)
    reg.add("charge_manager/state", m)
    reg.add(ccfg.name, ccfg)
    reg.add("power_manager/contactor_state", (contactor_state, m))
    reg.add("power_manager/contactor_reset", ContactorReset(m))
    dlm_cfg = app.configs["power_manager/dynamic_load_config"]
    for c in (cfg, ccfg, dlm_cfg):
        c.subscribe(m.changed)
    app.phase_control = m
    app.distribute = m.distribute
    _contactor(m, ccfg.values)
    _dlm(m, dlm_cfg)
    _build(m, cfg["chargers"])
    return ()          # the chargers' tasks are started by _build


def changed(m, name):
    cfgs = m.app.configs
    v = cfgs[name].values
    if name == "power_manager/dynamic_load_config":
        _dlm(m, cfgs[name])
        return
    if name == "charge_manager/config":
        _build(m, v["chargers"])
    else:
        _contactor(m, v)
        _push_limits(m)


def _contactor(m, v):
    """The phase contactor: relay (energised = 3 phases) and optional auxiliary contact from the
    board. After a restart its state comes from the aux contact where one is wired, else from
    the relay pin as read back (on the ESP32 a reset releases the relay, so the contactor really
    is in its 1p rest position then)."""
    pins = (v["relay_pin"], v["feedback_pin"])
    ps = m.ps
    if ps is not None and v["contactor_installed"] and m.contactor_pins == pins:
        # The same contactor with other timings: keep its state. A new PhaseSwitch ended a
        # running switch at once (the pilot back seconds into the CP-off time: a car that
        # stays 1p) and forgot a latched contactor error (only contactor_reset clears it).
        ps.cp_off_ms = v["cp_off_time_s"] * 1000
        ps.min_interval_ms = v["min_switch_interval_s"] * 1000
        return
    m.ps = m.relay = m.feedback = m.contactor_pins = None
    m.contactor_error = ""
    if not v["contactor_installed"]:
        return
    try:
        from firmware.control.phase_switch import PhaseSwitch
        board = m.app.board
        relay = board.pin(v["relay_pin"], out=True)
        fb = board.pin(v["feedback_pin"], out=False) if v["feedback_pin"] else None
        ps = PhaseSwitch(True, v["cp_off_time_s"] * 1000, v["min_switch_interval_s"] * 1000)
        ps.restore(bool(relay.value()), -1 if fb is None else (1 if fb.value() else 0))
        want = 1 if ps.relay_3p else 0
        if relay.value() != want:
            relay.value(want)
    except Exception as e:  # noqa: BLE001 - unknown pin name etc.: no contactor, and say why
        m.contactor_error = str(e)
        print("contactor:", e)
        return
    m.relay = relay
    m.feedback = fb
    m.ps = ps
    m.contactor_pins = pins


def _dlm(m, cfg):
    v = cfg.values
    m.dlm_enabled = v["enabled"]
    # A saved DLM config that could not be read may have protected the fuse: fail closed (the
    # chargers get no current) until it is written again, rather than run without DLM.
    m.dlm_unreadable = cfg.load_error is not None
    if m.dlm_enabled and m.dlm is None:
        from firmware.control.dlm import Dlm
        from firmware.chargers.dlm_step import step
        m.dlm = Dlm()
        m.dlm_step = step
        m.dlm_grid_ma = [0, 0, 0]
        m.dlm_draw_ma = [0, 0, 0]
        m.dlm_count = -1
    if m.dlm is not None:
        m.dlm.configure(v["current_limit"], v["largest_consumer_current"],
                        v["safety_margin_pct"])


def _build(m, entries):
    """(Re)create the charger objects from the config and start their tasks."""
    app = m.app
    new = []
    conf = []
    m.build_error = ""
    for c in entries:
        try:
            new.append(_make(app, c))
            conf.append(c)
        except Exception as e:  # noqa: BLE001 - e.g. a bus that is not configured
            m.build_error = "charger '%s': %s" % (c["name"], e)
            print("chargers:", m.build_error)
    for t in m.tasks:
        t.cancel()
    m.chargers[:] = new
    m.conf = conf
    # Also right before asyncio.run() (chargers in the saved config): on MicroPython a task
    # created then waits in the queue and starts with the loop.
    m.tasks = [asyncio.create_task(ch.run(app.clock)) for ch in new]
    if new:
        from firmware.control.charge_alloc import ChargeAlloc
        m.alloc = ChargeAlloc(slots=len(new))   # one slot per charger (built anew on changes)
        m.alloc.n = len(new)
    else:
        m.alloc = None
    _push_limits(m)


def _make(app, c):
    t = c["type"]
    make = app.charger_factories.get(t)
    if make is not None:
        return make(app, c)
    mx = c.get("max_current", 32000)
    if t == "warp_http":
        from firmware.chargers.http_evse import HttpEvseCharger
        return HttpEvseCharger(c["name"], c["host"], mx)
    # The wallboxes share the RS485 bus (and its owner task) with the meters.
    if t == "heidelberg":
        from firmware.chargers.modbus_wallbox import HeidelbergCharger as cls
    else:
        from firmware.chargers.evse_wb import EvseWbCharger as cls
    # install.py makes the bus on first use and is not kept loaded (call_once).
    bus = getattr(app, "modbus_bus", None) or call_once("firmware.modbus.install", "get_bus", app)
    return cls(c["name"], bus, c.get("address", 1), mx,
               app.configs["charge_manager/config"]["fallback_current"])


def _push_limits(m):
    app = m.app
    v = app.configs["charge_manager/config"].values
    total_max = 0
    for c in v["chargers"]:
        total_max += c.get("max_current", 32000)
    mx = v["maximum_available_current"]
    lim = app.charge_limits
    lim["max_current_ma"] = min(mx, total_max) if mx else 0
    lim["min_current_1p_ma"] = v["minimum_current_1p"]
    lim["min_current_3p_ma"] = v["minimum_current"]
    lim["contactor_installed"] = m.ps is not None
    lim["charger_count"] = len(v["chargers"])
    app.reconfigure()


def fallback_error(v):
    if 0 < v["fallback_current"] < 6000:
        return "Key 'fallback_current' must be 0 (stop) or at least 6000 mA"
    return None


def contactor_reset(m, payload):
    from firmware.api.registry import ApiError
    for k in payload:
        if k != "reset":
            raise ApiError(400, "JSON object has unknown key '%s'" % k)
    if payload.get("reset") is not True:
        raise ApiError(400, "Key 'reset' must be true")
    if m.ps is None:
        raise ApiError(400, "No contactor installed (power_manager/contactor_config)")
    m.ps.clear_error()


def check_chargers(value, types, slots=()):
    if not isinstance(value, list):
        return "Key 'chargers' must be of type array of objects"
    if len(value) > _MAX_CHARGERS:
        return "Key 'chargers' length %d is above the maximum %d" % (len(value), _MAX_CHARGERS)
    names = []
    addresses = []
    for i, c in enumerate(value):
        err = _check_charger(i, c, types)
        if err:
            return err
        if c["name"] in names:
            return "Key 'chargers': name '%s' is used twice" % c["name"]
        names.append(c["name"])
        if c["type"] in BUS_TYPES:
            # One slave id per device on the bus: set-points sent to another wallbox, or to a
            # meter's holding registers, and a meter read from a wallbox, are never right.
            a = c.get("address", 1)
            if a in addresses:
                return "Key 'chargers': address %d is used twice on the RS485 bus" % a
            addresses.append(a)
            for s in slots:
                if s.cfg["type"] == TYPE_RS485 and s.cfg["slave_id"] == a:
                    return ("Key 'chargers' entry %d: address %d is the slave id of the RS485 "
                            "meter in %s" % (i, a, s.cfg.name))
    return None


def _check_charger(i, c, types):
    if not isinstance(c, dict):
        return "Key 'chargers' entry %d must be an object" % i
    for k in c:
        if k not in _KEYS:
            return "Key 'chargers' entry %d has unknown key '%s'" % (i, k)
    for k in ("name", "type"):
        if k not in c:
            return "Key 'chargers' entry %d is missing key '%s'" % (i, k)
    for k in ("name", "type", "host"):
        if k in c and not isinstance(c[k], str):
            return "Key 'chargers' entry %d key '%s' must be of type string" % (i, k)
    if not 1 <= len(c["name"]) <= 32:
        return "Key 'chargers' entry %d: name must have 1 to 32 characters" % i
    if c["type"] not in types:
        return "Key 'chargers' entry %d: unknown type '%s', known are %s" % (
            i, c["type"], ", ".join(sorted(types)))
    for k, lo, hi in (("address", 1, 247), ("max_current", 6000, 32000),
                      ("min_current", 0, 32000)):
        if k in c:
            v = c[k]
            if isinstance(v, bool) or not isinstance(v, int):
                return "Key 'chargers' entry %d key '%s' must be of type int" % (i, k)
            if not lo <= v <= hi:
                return "Key 'chargers' entry %d key '%s' value %d is outside %d..%d" % (
                    i, k, v, lo, hi)
    if c.get("min_current", 0) and c["min_current"] < 6000:
        return "Key 'chargers' entry %d: min_current must be 0 (use the global) or >= 6000" % i
    if len(c.get("host", "")) > 64:
        return "Key 'chargers' entry %d: host is longer than 64 characters" % i
    if c["type"] == "warp_http" and not c.get("host"):
        return "Key 'chargers' entry %d: type warp_http needs a host" % i
    return None
