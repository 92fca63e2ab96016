# The charge manager subsystem: charger and contactor configuration, the chargers' tasks, and the
# control glue around the power manager step:
#   before_step: charger reachability, DLM (dynamic_load_config), the phase switching sequence
#                -> pm.is_3phase / switching / switching_state / blocked_flags / dlm_limit_ma
#   distribute:  pm.charge_manager_available_current -> per-charger currents (control/
#                charge_alloc) -> set_current(); pm.charge_manager_allocated_current
# API objects: charge_manager/config, charge_manager/state, power_manager/contactor_config,
# power_manager/contactor_state, power_manager/contactor_reset (clears a latched error).
import asyncio
import time

from firmware.api.config import ConfigObject, Field, BOOL, INT, STR
from firmware.api.registry import ApiError

# The contactor, DLM and allocation modules are imported only when configured: a board without
# chargers or contactor does not pay their heap.
MAX_CHARGERS = 16     # == control.charge_alloc.MAX_CHARGERS
_MONITORING = 0       # == control.phase_switch._MONITORING

# power_manager.py bits (kept here as plain numbers to avoid a dependency on its layout)
_BLOCKED_CONTACTOR = 8
_BLOCKED_CHARGER = 64
_PHASES_1 = 1
_PHASES_3 = 2
_PHASES_EXTERNAL = 3
_NO_DLM_LIMIT_MA = 1000000
_CURRENT_IDS = (14, 18, 22)
_CHARGER_KEYS = ("name", "type", "host", "address", "max_current", "min_current")


def _check_charger(i, c, types):
    if not isinstance(c, dict):
        return "Key 'chargers' entry %d must be an object" % i
    for k in c:
        if k not in _CHARGER_KEYS:
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


class ChargersField(Field):
    """A list of up to 16 charger objects, validated entry by entry."""

    def __init__(self, key, types):
        super().__init__(key, None, [])
        self.types = types

    def check(self, value):
        if not isinstance(value, list):
            return "Key '%s' must be of type array of objects" % self.key
        if len(value) > MAX_CHARGERS:
            return "Key '%s' length %d is above the maximum %d" % (self.key, len(value),
                                                                    MAX_CHARGERS)
        names = []
        for i, c in enumerate(value):
            err = _check_charger(i, c, self.types)
            if err:
                return err
            if c["name"] in names:
                return "Key 'chargers': name '%s' is used twice" % c["name"]
            names.append(c["name"])
        return None


def _check_cm(v):
    if 0 < v["fallback_current"] < 6000:
        return "Key 'fallback_current' must be 0 (stop) or at least 6000 mA"
    return None


def charge_manager_config(store, types):
    return ConfigObject("charge_manager/config", [
        ChargersField("chargers", types),
        # The maximum total current all chargers together may draw per phase (the supply line);
        # 0 = not configured (config_error_flags bit 2).
        Field("maximum_available_current", INT, 0, 0, 1000000),
        Field("minimum_current", INT, 6000, 6000, 32000),      # per charger, 3p
        Field("minimum_current_1p", INT, 6000, 6000, 32000),   # per charger, 1p
        # What a Modbus wallbox uses by itself when this controller stops talking to it
        # (Heidelberg watchdog, EVSE-WB amps after boot): 0 = stop, else 6000..32000.
        Field("fallback_current", INT, 0, 0, 32000),
    ], store, _check_cm)


def contactor_config(store):
    return ConfigObject("power_manager/contactor_config", [
        Field("contactor_installed", BOOL, False),
        Field("relay_pin", STR, "contactor", lo=1, hi=24),
        Field("feedback_pin", STR, "", hi=24),          # "" = no auxiliary contact wired
        Field("cp_off_time_s", INT, 60, 10, 120),       # DOMAIN 3: some cars need ~45 s
        Field("min_switch_interval_s", INT, 30, 10, 3600),
    ], store)


class _ContactorState:
    def __init__(self, mgr):
        self.mgr = mgr

    def to_dict(self):
        c = self.mgr.contactor
        if c is None:
            return {"installed": False, "relay_3p": False, "feedback": -1,
                    "is_3phase": self.mgr.app.pm.is_3phase, "switching_state": 0, "error": 0,
                    "last_result": 0, "next_switch_allowed_in_ms": 0}
        return c.to_dict()


class _ContactorReset:
    """power_manager/contactor_reset: write {"reset": true} (or bare true) to clear a latched
    contactor monitoring error. The contact is checked again at once; a contactor that still
    disagrees latches again."""

    def __init__(self, mgr):
        self.mgr = mgr

    def to_dict(self):
        c = self.mgr.contactor
        return {"reset": False, "error": 0 if c is None else c.ps.error}

    def writable_keys(self):
        return ("reset",)

    def write(self, payload):
        for k in payload:
            if k != "reset":
                raise ApiError(400, "JSON object has unknown key '%s'" % k)
        if payload.get("reset") is not True:
            raise ApiError(400, "Key 'reset' must be true")
        if self.mgr.contactor is None:
            raise ApiError(400, "No contactor installed (power_manager/contactor_config)")
        self.mgr.contactor.ps.clear_error()


class _ChargeManagerState:
    def __init__(self, mgr):
        self.mgr = mgr

    def to_dict(self):
        m = self.mgr
        now = m.app.clock.ticks_ms()
        a = m.alloc
        chargers = []
        for i, ch in enumerate(m.chargers):
            d = ch.to_dict(now)
            d["allocated_current"] = a.alloc_ma[i] if a else 0
            d["requested_current"] = a.request_ma[i] if a else 0
            chargers.append(d)
        d = m.dlm
        if d is None:
            dlm = {"enabled": False, "target": 0, "limits": [0, 0, 0], "stale": False,
                   "urgent": False}
        else:
            dlm = {"enabled": m.dlm_enabled, "target": d.target_ma, "limits": list(d.limit_ma),
                   "stale": d.stale if m.dlm_enabled else False, "urgent": d.urgent}
        return {"chargers": chargers,
                "available_current": m.app.pm.charge_manager_available_current,
                "allocated_current": a.allocated_ma if a else 0,
                "waiting_chargers": a.waiting if a else 0,
                "dlm": dlm,
                "config_error": m.build_error}


def _http_factory(app, c):
    from firmware.chargers.http_evse import HttpEvseCharger
    return HttpEvseCharger(c["name"], c["host"], c.get("max_current", 32000))


def _modbus_factory(cls_name):
    def make(app, c):
        # The wallboxes share the RS485 bus (and its owner task) with the meters.
        from firmware.modbus.install import get_bus
        from firmware.chargers import modbus_wallbox
        cls = getattr(modbus_wallbox, cls_name)
        return cls(c["name"], get_bus(app), c.get("address", 1), c.get("max_current", 32000),
                   app.configs["charge_manager/config"]["fallback_current"])
    return make


class ChargeManager:
    def __init__(self, app):
        self.app = app
        if not hasattr(app, "charger_factories"):
            app.charger_factories = {}
        app.charger_factories.setdefault("warp_http", _http_factory)
        app.charger_factories.setdefault("heidelberg", _modbus_factory("HeidelbergCharger"))
        app.charger_factories.setdefault("evse_wb", _modbus_factory("EvseWbCharger"))
        self.cfg = None
        self.ccfg = None
        self.dlm_cfg = None
        self.chargers = app.chargers          # the app's list, kept in place
        self.alloc = None        # ChargeAlloc, once there are chargers
        self.dlm = None          # Dlm, once DLM is enabled
        self.dlm_enabled = False
        self.contactor = None
        self.build_error = ""
        self._tasks = []
        self._rebuild = True
        self._dlm_count = -1
        self._grid_ma = [0, 0, 0]
        self._draw_ma = [0, 0, 0]
        self._conf = []
        self._pm_stepped = False

    # ---- configuration ----
    def install(self):
        app = self.app
        types = app.charger_factories
        self.cfg = app._add_config(charge_manager_config(app.store, types))
        self.ccfg = app._add_config(contactor_config(app.store))
        self.dlm_cfg = app.configs["power_manager/dynamic_load_config"]
        reg = app.registry
        reg.add("charge_manager/config", self.cfg)
        reg.add("charge_manager/state", _ChargeManagerState(self))
        reg.add("power_manager/contactor_config", self.ccfg)
        reg.add("power_manager/contactor_state", _ContactorState(self))
        reg.add("power_manager/contactor_reset", _ContactorReset(self))
        self.cfg.subscribe(self._changed)
        self.ccfg.subscribe(self._contactor_changed)
        self.dlm_cfg.subscribe(self._dlm_changed)
        app.phase_control = self
        app.distribute = self.distribute
        self._contactor_changed()
        self._dlm_changed()
        self._build_chargers()
        return (self.supervise(),)

    def _changed(self, _cfg=None):
        self._rebuild = True
        self._build_chargers()

    def _contactor_changed(self, _cfg=None):
        v = self.ccfg.values
        if v["contactor_installed"]:
            try:
                from firmware.chargers.contactor import Contactor
                self.contactor = Contactor(self.app.board, v["relay_pin"], v["feedback_pin"],
                                           v["cp_off_time_s"] * 1000,
                                           v["min_switch_interval_s"] * 1000)
            except Exception as e:  # noqa: BLE001 - unknown pin name etc.: no contactor
                print("contactor:", e)
                self.contactor = None
        else:
            self.contactor = None
        self._push_limits()

    def _dlm_changed(self, _cfg=None):
        v = self.dlm_cfg.values
        self.dlm_enabled = v["enabled"]
        if self.dlm_enabled and self.dlm is None:
            from firmware.control.dlm import Dlm
            self.dlm = Dlm()
        if self.dlm is not None:
            self.dlm.configure(v["current_limit"], v["largest_consumer_current"],
                               v["safety_margin_pct"])

    def _push_limits(self):
        v = self.cfg.values
        total_max = 0
        for c in v["chargers"]:
            total_max += c.get("max_current", 32000)
        mx = v["maximum_available_current"]
        lim = self.app.charge_limits
        lim["max_current_ma"] = min(mx, total_max) if mx else 0
        lim["min_current_1p_ma"] = v["minimum_current_1p"]
        lim["min_current_3p_ma"] = v["minimum_current"]
        lim["contactor_installed"] = self.contactor is not None
        lim["charger_count"] = len(v["chargers"])
        self.app.reconfigure()

    def _build_chargers(self):
        """(Re)create the charger objects from the config (allocates; config changes only)."""
        app = self.app
        new = []
        conf = []
        self.build_error = ""
        for c in self.cfg["chargers"]:
            try:
                new.append(app.charger_factories[c["type"]](app, c))
                conf.append(c)
            except Exception as e:  # noqa: BLE001 - e.g. a bus that is not configured
                self.build_error = "charger '%s': %s" % (c["name"], e)
                print("chargers:", self.build_error)
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.chargers[:] = new
        self._conf = conf                      # config entry of each built charger
        if new:
            from firmware.control.charge_alloc import ChargeAlloc
            self.alloc = ChargeAlloc()
            self.alloc.n = len(new)
        else:
            self.alloc = None
        self._rebuild = True
        self._push_limits()

    async def supervise(self):
        """Runs every charger's own task; restarts them after a config change."""
        clock = self.app.clock
        while True:
            if self._rebuild:
                self._rebuild = False
                for ch in self.chargers:
                    self._tasks.append(asyncio.create_task(ch.run(clock)))
            await clock.sleep_ms(500)

    # ---- control glue (runs in the control task, no I/O, no awaits) ----
    def before_step(self, now_ms, dt_ms):
        app = self.app
        pm = app.pm
        chargers = self.chargers
        any_current = False
        all_cp = len(chargers) > 0
        all_reachable = True
        for ch in chargers:
            ch.check_reachable(now_ms)
            if ch.current_flowing():
                any_current = True
            if not ch.supports_cp_disconnect:
                all_cp = False
            if not ch.reachable:
                all_reachable = False
        mode = pm.phase_switching_mode
        blocked = 0
        c = self.contactor
        if c is not None:
            ps = c.ps
            # pm.wants_3phase is only meaningful after the power manager has stepped once (it
            # adopts the contactor's real state on its first step: no switch after a restart).
            if (self._pm_stepped and ps.state == _MONITORING and pm.wants_3phase != ps.is_3phase
                    and ps.error == 0):
                ps.request(pm.wants_3phase, all_cp)
            c.step(dt_ms, any_current)
            cp = ps.cp_disconnect
            for ch in chargers:
                ch.set_cp_disconnect(cp)
            pm.is_3phase = ps.is_3phase
            pm.switching = ps.state != _MONITORING
            pm.switching_state = ps.state
            if ps.error:
                blocked |= _BLOCKED_CONTACTOR
        else:
            # No contactor: the wiring decides; "always 1p" means the chargers are wired 1p.
            pm.is_3phase = mode != _PHASES_1
            pm.switching = False
            pm.switching_state = 0
        if mode == _PHASES_EXTERNAL and (not all_reachable or not all_cp):
            blocked |= _BLOCKED_CHARGER
        pm.blocked_flags = blocked
        # Dynamic load management.
        if self.dlm_enabled:
            self._step_dlm(now_ms, dt_ms, pm.is_3phase)
            pm.dlm_limit_ma = self.dlm.limit_for(pm.is_3phase)
        else:
            pm.dlm_limit_ma = _NO_DLM_LIMIT_MA

    def _step_dlm(self, now_ms, dt_ms, is3):
        slot = self.app.slots[self.dlm_cfg["meter_slot_grid_currents"]]
        g = self._grid_ma
        ok = True
        for p in range(3):
            v = slot.get(_CURRENT_IDS[p])
            if v is None:
                ok = False
            else:
                g[p] = int(v * 1000)
        age = slot.age_ms(now_ms) if ok else 1 << 29
        if ok and slot.is_stale(now_ms):
            age = 1 << 29
        fresh = slot.update_count != self._dlm_count
        self._dlm_count = slot.update_count
        d = self._draw_ma
        d[0] = d[1] = d[2] = 0
        for i, ch in enumerate(self.chargers):
            pc = ch.phase_currents_ma
            if ch.has_meter or ch.charging:
                for p in range(3):
                    d[p] += pc[p]
        lim = self.app.charge_limits
        min_ma = lim["min_current_3p_ma"] if is3 else lim["min_current_1p_ma"]
        self.dlm.step(dt_ms, g, age, fresh, d, min_ma)

    def distribute(self, now_ms, dt_ms):
        app = self.app
        pm = app.pm
        a = self.alloc
        self._pm_stepped = True
        if a is None:
            pm.charge_manager_allocated_current = 0
            return
        chargers = self.chargers
        v = self.cfg.values
        is3 = pm.is_3phase
        gmin = v["minimum_current"] if is3 else v["minimum_current_1p"]
        hold = self.contactor is not None and self.contactor.ps.hold_zero
        budget = pm.charge_manager_available_current
        mx = app.charge_limits["max_current_ma"]
        if budget > mx:
            budget = mx
        if budget > pm.dlm_limit_ma:
            budget = pm.dlm_limit_ma
        if hold or pm.switching:
            budget = 0
        n = len(chargers)
        a.n = n
        conf = self._conf
        for i in range(n):
            ch = chargers[i]
            a.active[i] = ch.reachable and ch.vehicle_connected
            a.charging[i] = ch.charging
            a.measured_ma[i] = ch.max_phase_ma() if ch.has_meter else a.alloc_ma[i]
            m = conf[i].get("min_current", 0)
            a.min_ma[i] = m if m > gmin else gmin
            a.max_ma[i] = ch.max_ma
        a.step(dt_ms, budget)
        for i in range(n):
            chargers[i].set_current(0 if hold else a.alloc_ma[i])
        pm.charge_manager_allocated_current = a.allocated_ma
        self._pm_stepped = True


def install(app):
    # Idempotent: make sim installs it early (after registering its simulated charger type),
    # the board's subsystem list installs it again.
    if getattr(app, "charge_manager", None) is not None:
        return ()
    app.charge_manager = ChargeManager(app)
    return app.charge_manager.install()
