# What runs only when a config (or a command object) is written, or a saved config is loaded:
# type/range checks, the cross-field rules, loading. firmware/api/config.py's call_write()
# imports this module for one call and drops it again, so its code is not on the heap while the
# firmware just runs (docs/board.md, heap). Never import it directly from resident code.
from firmware.api.config import Field, BOOL, INT, STR, INT_LIST
from firmware.api.registry import ApiError

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
    for f in obj.fields:
        by_key[f.key] = f
    for key in payload:
        if key not in by_key:
            raise ApiError(400, "JSON object has unknown key '%s'" % key)
    merged = dict(obj.values)
    for key, value in payload.items():
        err = field_error(by_key[key], value)
        if err:
            raise ApiError(400, err)
        merged[key] = value
    if obj.check:
        err = obj.check(merged)
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
        obj.values = {f.key: f.default for f in obj.fields}


# ---- cross-field rules (DOMAIN 1-2, 5) ------------------------------------------------------

# The rules import their constants when they run: a config of another module (MQTT, Wi-Fi)
# must not pull the power manager's or the slots' modules in.

def _pv_mode_error(key, mode):
    from firmware.api.power_manager_api import MODE_NAMES
    return "Key '%s': charge mode %d (%s) is only available when excess_charging_enable is true" % (
        key, mode, MODE_NAMES[mode])


def pm_config_error(v):
    from firmware.api import power_manager_api as pm
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
    from firmware.meters.slots import KNOWN_VALUE_IDS, TYPE_API
    ids = v["value_ids"]
    for vid in ids:
        if vid not in KNOWN_VALUE_IDS:
            return "Key 'value_ids' has unknown value id %d: known are %s" % (
                vid, ", ".join(str(k) for k in KNOWN_VALUE_IDS))
    if len(set(ids)) != len(ids):
        return "Key 'value_ids' lists a value id twice"
    if v["type"] == TYPE_API and not ids:
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
    from firmware.api import power_manager_api as pm
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
