# The charge manager subsystem: charger and contactor configuration, the chargers' tasks, and the
# control glue around the power manager step:
#   before_step: charger reachability, DLM (dynamic_load_config), the phase switching sequence
#                and the contactor relay -> pm.is_3phase / switching / switching_state /
#                blocked_flags / dlm_limit_ma
#   distribute:  pm.charge_manager_available_current -> per-charger currents (control/
#                charge_alloc) -> set_current(); pm.charge_manager_allocated_current
# API objects: charge_manager/config, charge_manager/state, power_manager/contactor_config,
# power_manager/contactor_state, power_manager/contactor_reset (clears a latched error).
#
# Heap: only what runs all the time lives here (the control glue and the state objects).
# Setup, config validation and the reaction to config changes live in cm_config.py, which is
# imported for one call and dropped again (_config_call): config changes are rare, RAM is not.
# The DLM (with its glue, dlm_step.py), allocation and driver modules are imported only when
# configured.

from micropython import const

from firmware import call_once
from firmware.api.config import Field

_MONITORING = const(0)          # == control.phase_switch.MONITORING
# power_manager.py bits (kept here as plain numbers to avoid a dependency on its layout)
_BLOCKED_CONTACTOR = const(8)
_BLOCKED_CHARGER = const(64)
_PHASES_1 = const(1)
_PHASES_EXTERNAL = const(3)
_NO_DLM_LIMIT_MA = const(1000000)
_CONFIG_MODULE = "firmware.chargers.cm_config"


def _config_call(fn, *args):
    """cm_config.<fn>(*args) with cm_config imported for this call only: afterwards neither
    sys.modules nor the package keeps it, so its code is garbage at the next collection.
    (Calls may nest - a config load validates - so a module already gone is fine.)"""
    return call_once(_CONFIG_MODULE, fn, *args)


def check_cm(v):
    """charge_manager/config's cross-field rule (the config object holds this function)."""
    return _config_call("fallback_error", v)


# The charger types on the RS485 bus: their 'address' is a slave id there, which no other
# device (wallbox, RS485 meter) may have.
BUS_TYPES = ("heidelberg", "evse_wb")


class ChargersField(Field):
    """charge_manager/config 'chargers': a list of up to 16 charger objects (cm_config checks).
    `types` is the app's charger_factories dict: its keys are the known types; `slots` the
    app's meter slots (an RS485 meter's slave id is taken on the bus)."""
    slots = ()

    def check(self, value):
        return _config_call("check_chargers", value, self.types, self.slots)


class ChargeManager:
    """Also the charge_manager/state object (to_dict)."""
    alloc = None              # control.charge_alloc.ChargeAlloc, once there are chargers
    dlm = None                # control.dlm.Dlm, once DLM is enabled
    dlm_enabled = False
    dlm_unreadable = False
    dlm_step = None           # chargers.dlm_step.step, once DLM is enabled
    ps = None                 # control.phase_switch.PhaseSwitch while a contactor is installed
    relay = None              # its relay output pin (energised = 3 phases)
    feedback = None           # its auxiliary contact input, None when not wired
    contactor_pins = None     # (relay_pin, feedback_pin) names of that contactor
    build_error = ""
    contactor_error = ""      # why the configured contactor could not be set up (a pin name)
    _pm_stepped = False

    def __init__(self, app):
        self.app = app
        self.chargers = app.chargers          # the app's list, kept in place
        self.tasks = []                       # the chargers' run() tasks
        self.conf = []                        # config entry of each built charger

    def changed(self, cfg):
        """Listener of charge_manager/config, contactor_config and dynamic_load_config."""
        _config_call("changed", self, cfg.name)

    def to_dict(self):
        now = self.app.clock.ticks_ms()
        a = self.alloc
        chargers = []
        for i, ch in enumerate(self.chargers):
            d = ch.to_dict(now)
            d["allocated_current"] = a.alloc_ma[i] if a else 0
            d["requested_current"] = a.request_ma[i] if a else 0
            chargers.append(d)
        d = self.dlm
        if d is None:
            dlm = {"enabled": False, "target": 0, "limits": [0, 0, 0], "stale": False,
                   "urgent": False}
        else:
            dlm = {"enabled": self.dlm_enabled, "target": d.target_ma,
                   "limits": list(d.limit_ma), "stale": d.stale if self.dlm_enabled else False,
                   "urgent": d.urgent}
        return {"chargers": chargers,
                "available_current": self.app.pm.charge_manager_available_current,
                "allocated_current": a.allocated_ma if a else 0,
                "waiting_chargers": a.waiting if a else 0,
                "dlm": dlm,
                "config_error": self.build_error}

    # ---- control glue (runs in the control task, no I/O, no awaits, no allocation) ----
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
        ps = self.ps
        if ps is not None:
            # pm.wants_3phase is only meaningful after the power manager has stepped once (it
            # adopts the contactor's real state on its first step: no switch after a restart).
            # Not while a charger is unreachable: its current can never be confirmed at 0 A, so
            # each attempt only held every car at 0 A for the stop timeout and gave up, again
            # after every min_switch_interval (a stop/start cycle every 25-45 s).
            if (self._pm_stepped and ps.state == _MONITORING and pm.wants_3phase != ps.is_3phase
                    and ps.error == 0 and all_reachable):
                ps.request(pm.wants_3phase, all_cp)
            fb = self.feedback
            ps.step(dt_ms, any_current, -1 if fb is None else (1 if fb.value() else 0))
            # This is the only writer of the relay pin.
            want = 1 if ps.relay_3p else 0
            if self.relay.value() != want:
                self.relay.value(want)
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
        if self.dlm_enabled:
            self.dlm_step(self, now_ms, dt_ms)        # chargers/dlm_step.py: imported with DLM
        elif self.dlm_unreadable:
            pm.dlm_limit_ma = 0     # its saved config is corrupt: charging_blocked 32 (DLM)
        else:
            pm.dlm_limit_ma = _NO_DLM_LIMIT_MA

    def distribute(self, now_ms, dt_ms):
        app = self.app
        pm = app.pm
        a = self.alloc
        self._pm_stepped = True
        if a is None:
            pm.charge_manager_allocated_current = 0
            return
        chargers = self.chargers
        lim = app.charge_limits
        gmin = lim["min_current_3p_ma"] if pm.is_3phase else lim["min_current_1p_ma"]
        hold = self.ps is not None and self.ps.hold_zero
        budget = pm.charge_manager_available_current
        if budget > lim["max_current_ma"]:
            budget = lim["max_current_ma"]
        if budget > pm.dlm_limit_ma:
            budget = pm.dlm_limit_ma
        if hold or pm.switching:
            budget = 0
        n = len(chargers)
        a.n = n
        conf = self.conf
        for i in range(n):
            ch = chargers[i]
            a.active[i] = ch.reachable and ch.vehicle_connected
            a.charging[i] = ch.charging
            pc = ch.phase_currents_ma
            a.measured_ma[i] = max(pc[0], pc[1], pc[2]) if ch.has_meter else a.alloc_ma[i]
            m = conf[i].get("min_current", 0)
            a.min_ma[i] = m if m > gmin else gmin
            a.max_ma[i] = ch.max_ma
        a.step(dt_ms, budget)
        for i in range(n):
            chargers[i].set_current(0 if hold else a.alloc_ma[i])
        pm.charge_manager_allocated_current = a.allocated_ma


def contactor_state(m):
    """power_manager/contactor_state (read-only; a registry tuple with the ChargeManager)."""
    ps = m.ps
    if ps is None:
        return {"installed": False, "relay_3p": False, "feedback": -1,
                "is_3phase": m.app.pm.is_3phase, "switching_state": 0, "error": 0,
                "last_result": 0, "next_switch_allowed_in_ms": 0,
                "config_error": m.contactor_error}
    fb = m.feedback
    return {"installed": True, "relay_3p": ps.relay_3p,
            "feedback": -1 if fb is None else (1 if fb.value() else 0),
            "is_3phase": ps.is_3phase, "switching_state": ps.state, "error": ps.error,
            "last_result": ps.last_result, "next_switch_allowed_in_ms": ps.interval_left_ms,
            "config_error": ""}


class ContactorReset:
    """power_manager/contactor_reset: write {"reset": true} (or bare true) to clear a latched
    contactor monitoring error. The contact is checked again at once; a contactor that still
    disagrees latches again. (An object, not a registry tuple: MQTT offers objects with write()
    as commands.)"""
    writable_keys = ("reset",)     # a class attribute, not a method (registry.write takes both)

    def __init__(self, mgr):
        self.mgr = mgr

    def to_dict(self):
        ps = self.mgr.ps
        return {"reset": False, "error": 0 if ps is None else ps.error}

    def write(self, payload):
        _config_call("contactor_reset", self.mgr, payload)


def install(app):
    # Idempotent: make sim installs it early (after registering its simulated charger type),
    # the board's subsystem list installs it again.
    if getattr(app, "charge_manager", None) is not None:
        return ()
    return _config_call("install", app)
