# The cold paths: code that runs only when a config or command object is written, when a saved
# config is loaded, or at boot (building the core's objects: cold_boot.py, through boot()).
# config.py's cold() imports this module for one call and drops it again, so its code and the
# core's schemas are not on the heap while the firmware runs (docs/board.md, heap). Never import
# it from resident code: go through cold("function", args...).
from firmware import call_once

from firmware.api.config import Field, FieldTuple as F, BOOL, INT, STR, INT_LIST
from firmware.api.registry import ApiError
from firmware.api import power_manager_api as pm
from firmware.meters import slots as ms

# ---- schemas: (key, kind, default, lo, hi, choices, secret) ---------------------------------
# A config object built here holds the schema's name; schema(obj) finds the tuples again.

SLOT_CHOICES = (0, 1, 2, 3, 4, 5, 6, pm.NO_METER)

PM_FIELDS = (
    # Obsolete in the spec: accepted on write, always reported as derived (pm.PmConfig).
    F("enabled", BOOL, True, None, None, None, False),
    F("phase_switching_mode", INT, 1, None, None, (0, 1, 2, 3, 4), False),
    F("excess_charging_enable", BOOL, True, None, None, None, False),
    F("default_mode", INT, pm.MODE_FAST, 0, 3, None, False),
    F("meter_slot_grid_power", INT, 0, None, None, SLOT_CHOICES, False),
    F("meter_slot_battery_power", INT, pm.NO_METER, None, None, SLOT_CHOICES, False),
    F("target_power_from_grid", INT, 0, -100000, 100000, None, False),
    F("guaranteed_power", INT, 1380, 0, 100000, None, False),
    F("cloud_filter_mode", INT, pm.CLOUD_FILTER_MODE_DEFAULT, 0, 3, None, False),
    F("battery_mode", INT, 0, 0, 1, None, False),
    F("battery_inverted", BOOL, False, None, None, None, False),
    F("battery_deadzone", INT, 100, 0, 10000, None, False),
)

DLM_FIELDS = (
    F("enabled", BOOL, False, None, None, None, False),
    F("meter_slot_grid_currents", INT, 0, 0, 6, None, False),
    F("current_limit", INT, 32000, 0, 1000000, None, False),
    F("largest_consumer_current", INT, 16000, 0, 1000000, None, False),
    F("safety_margin_pct", INT, 0, 0, 50, None, False),
)

# hysteresis_time in seconds: range 10 s .. 60 min (DOMAIN 1); reference default 5 min, ours
# 4 min (pm.HYSTERESIS_TIME_DEFAULT_S, benchmarked).
DEBUG_FIELDS = (
    F("hysteresis_time", INT, pm.HYSTERESIS_TIME_DEFAULT_S, 10, 3600, None, False),
)

# meters/N/config, one schema for all 7 slots.
SLOT_FIELDS = (
    F("type", INT, ms.TYPE_NONE, None, None,
      (ms.TYPE_NONE, ms.TYPE_API, ms.TYPE_RS485, ms.TYPE_SIM), False),
    F("display_name", STR, "", None, 32, None, False),
    F("value_ids", INT_LIST, [ms.POWER], None, 16, None, False),
    F("model", STR, "", None, 24, None, False),
    F("slave_id", INT, 1, 1, 247, None, False),
    F("stale_timeout_s", INT, 30, 2, 600, None, False),
)


def schema(obj):
    f = obj.fields
    return globals()[f] if type(f) is str else f


def _defaults(fields):
    return {f.key: f.default for f in fields}


def boot(fn, app):
    """Build the core's objects at boot: firmware/api/cold_boot.py.<fn>(app), that module
    imported for this call and dropped afterwards like this one (a write needs less heap)."""
    call_once("firmware.api.cold_boot", fn, app)


# ---- writes and loading ---------------------------------------------------------------------

_KIND_NAMES = ("bool", "int", "string", "array of int")


def field_error(f, value):
    """An error message for `value` in field `f`, or None when it is valid."""
    if isinstance(f, Field):         # a subclass with its own check
        return f.check(value)
    key, k, _, lo, hi, choices, _ = f
    if k == BOOL:
        ok = value is True or value is False
    elif k == INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif k == STR:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok:
        return "Key '%s' must be of type %s" % (key, _KIND_NAMES[k])
    if choices is not None and value not in choices:
        return "Key '%s' has invalid value %r: allowed are %s" % (
            key, value, ", ".join(str(c) for c in choices))
    size = value if k == INT else (len(value) if k in (STR, INT_LIST) else None)
    if size is not None:
        what = "value" if k == INT else "length"
        if lo is not None and size < lo:
            return "Key '%s' %s %d is below the minimum %d" % (key, what, size, lo)
        if hi is not None and size > hi:
            return "Key '%s' %s %d is above the maximum %d" % (key, what, size, hi)
    return None


def validate(obj, payload):
    """The merged values of ConfigObject `obj` with `payload`; ApiError(400) names a problem."""
    if not isinstance(payload, dict):
        raise ApiError(400, "JSON payload must be an object")
    by_key = {}
    for f in schema(obj):
        by_key[f.key] = f
    for key in payload:
        if key not in by_key:
            raise ApiError(400, "JSON object has unknown key '%s'" % key)
    merged = dict(obj.values)
    for key, value in payload.items():
        f = by_key[key]
        if value is None and f.secret:
            continue    # a secret reads as null: a client that PUTs what it GOT keeps it
        err = field_error(f, value)
        if err:
            raise ApiError(400, err)
        merged[key] = value
    chk = obj.check
    if chk:
        err = (globals()[chk] if type(chk) is str else chk)(merged)
        if err:
            raise ApiError(400, err)
    return merged


def load(obj):
    """ConfigObject.load() for an existing file: a corrupt or invalid one is reported in
    load_error and replaced by the defaults (never a crash)."""
    try:
        saved = obj.store.load(obj.name)
        if saved is not None:
            # Keys added by a newer firmware keep their defaults; a file written by an
            # older firmware with keys we no longer know is reported, not trusted.
            obj.values = obj.validate(saved)
    except Exception as e:  # noqa: BLE001 - any failure means: defaults, and say so
        obj.load_error = "%s: %s" % (obj.name, e.args[0] if e.args else repr(e))
        print("config:", obj.load_error, "- using defaults")
        obj.values = _defaults(schema(obj))


# ---- cross-field rules (DOMAIN 1-2, 5) ------------------------------------------------------

def _pv_mode_error(key, mode):
    return "Key '%s': charge mode %d (%s) is only available when excess_charging_enable is true" % (
        key, mode, pm.MODE_NAMES[mode])


def pm_config_error(v):
    if not v["excess_charging_enable"] and v["default_mode"] in (pm.MODE_PV, pm.MODE_MIN_PV):
        return _pv_mode_error("default_mode", v["default_mode"]) + \
            " (write both keys together to change them)"
    if v["excess_charging_enable"] and v["phase_switching_mode"] == pm.PHASE_SWITCHING_EXTERNAL:
        # The reference vendor's validation texts (DOMAIN 1) where it has one.
        return "Can't enable excess charging when external control is enabled for phase switching."
    if v["meter_slot_battery_power"] != pm.NO_METER and \
            v["meter_slot_battery_power"] == v["meter_slot_grid_power"]:
        return "Grid and battery storage cannot use the same power meter"
    return None


def dlm_config_error(v):
    if v["enabled"]:
        if v["current_limit"] < 16000:
            return "Invalid current limit. Must be at least 16A."
        if v["largest_consumer_current"] > v["current_limit"]:
            return "Largest consumer current cannot be above current limit."
    return None


def slot_config_error(v):
    ids = v["value_ids"]
    for vid in ids:
        if vid not in ms.KNOWN_VALUE_IDS:
            return "Key 'value_ids' has unknown value id %d: known are %s" % (
                vid, ", ".join(str(k) for k in ms.KNOWN_VALUE_IDS))
    if len(set(ids)) != len(ids):
        return "Key 'value_ids' lists a value id twice"
    if v["type"] == ms.TYPE_API and not ids:
        return "An API meter needs at least one value id in 'value_ids'"
    return None


# ---- command objects: power_manager/charge_mode and power_manager/external_control ----------

def _one_int(payload, name):
    for key in payload:
        if key != name:
            raise ApiError(400, "JSON object has unknown key '%s'" % key)
    if name not in payload:
        raise ApiError(400, "JSON object is missing key '%s'" % name)
    n = payload[name]
    if isinstance(n, bool) or not isinstance(n, int):
        raise ApiError(400, "Key '%s' must be of type int" % name)
    return n


def charge_mode(cm, payload):
    mode = _one_int(payload, "mode")
    if not 0 <= mode <= 3:
        raise ApiError(400, "Key 'mode' has invalid value %d: allowed are 0, 1, 2, 3" % mode)
    if mode in (pm.MODE_PV, pm.MODE_MIN_PV) and not cm.cfg["excess_charging_enable"]:
        raise ApiError(400, _pv_mode_error("mode", mode))
    cm.set(mode)


def external_control(ec, payload):
    n = _one_int(payload, "phases_wanted")
    if n not in (1, 3):
        raise ApiError(400, "Invalid value for phases_wanted! Only 1 or 3 are allowed.")
    state = ec.pm.external_control_state()
    if state == 1:
        raise ApiError(400, "External control is disabled: set phase_switching_mode to 3 "
                            "in power_manager/config")
    if state == 2:
        raise ApiError(400, "External control is currently unavailable (contactor error, "
                            "charger unreachable or no CP disconnect)")
    if state == 3:
        raise ApiError(400, "Phase switching in progress")
    ec.phases_wanted = n
    ec.pm.set_phases_wanted(n)
