# The power manager's API objects (spec: power_manager/*) and how writes reach the control step.
# Their schemas, the cross-field rules of DOMAIN 1-2 and the construction live in
# firmware/api/cold.py (only needed at boot and on a write). Only the glue lives here; the
# decisions are in firmware/control/.
from firmware.api.config import ConfigObject, cold

NO_METER = 255  # "no meter" for the meter slot keys

MODE_FAST = 0
MODE_OFF = 1
MODE_PV = 2
MODE_MIN_PV = 3
MODE_NAMES = ("Fast", "Off", "PV", "Min + PV")

PHASE_SWITCHING_EXTERNAL = 3

# Defaults chosen with the PV-day benchmark (docs/benchmark.md, "Choosing the defaults"): no cloud
# filter and a 4 min hysteresis capture the most surplus over the 9 days (92.7 %) with <= 5
# starts; the hysteresis, not the filter, rides out clouds on 1-minute data. The reference ships
# filter 2 and 5 min. The spec's semantics of both keys are unchanged.
CLOUD_FILTER_MODE_DEFAULT = 0
HYSTERESIS_TIME_DEFAULT_S = 240

class PmConfig(ConfigObject):
    """power_manager/config; served with `enabled` derived, as the spec says (`dlm`: the
    dynamic load config)."""

    def to_dict(self):
        d = ConfigObject.to_dict(self)
        d["enabled"] = bool(d["excess_charging_enable"] or self.dlm["enabled"])
        return d

    def dlm_changed(self, _dlm):
        # `enabled` reads the DLM config too: its change is this object's change for the
        # listeners (MQTT publishes a config on change notice).
        for fn in self._listeners:
            fn(self)


class ChargeMode:
    """power_manager/charge_mode: the mode in use now; after a restart it is default_mode."""

    writable_keys = ("mode",)

    def __init__(self, cfg, on_change):
        self.cfg = cfg
        self.on_change = on_change
        self.mode = cfg["default_mode"]

    def to_dict(self):
        return {"mode": self.mode}

    def write(self, payload):
        cold("charge_mode", self, payload)   # validates, then self.set(mode)

    def set(self, mode):
        self.mode = mode
        self.on_change(mode)

    def config_changed(self, cfg):
        # PV modes vanish with excess charging: fall back to the (validated) default mode.
        if self.mode in (MODE_PV, MODE_MIN_PV) and not cfg["excess_charging_enable"]:
            self.set(cfg["default_mode"])


class ExternalControl:
    """power_manager/external_control: the phase request of an external energy manager."""

    writable_keys = ("phases_wanted",)

    def __init__(self, pm):
        self.pm = pm
        self.phases_wanted = 0

    def to_dict(self):
        return {"phases_wanted": self.phases_wanted}

    def write(self, payload):
        cold("external_control", self, payload)   # validates, then asks the power manager


def state_dict(app):
    """power_manager/state."""
    return {"config_error_flags": app.config_error_flags(),
            "external_control": app.pm.external_control_state()}


def low_level_state(app):
    """power_manager/low_level_state: the control step's state, power_at_meter as the spec's
    example and the reference give it, the grid meter's reading in W as a float (the control
    step works in whole watts; a float per step would cost the ESP32 heap)."""
    from firmware.meters.slots import POWER   # (loaded already; not at import: CPython tests)
    d = app.pm.low_level_state()
    index = app.configs["power_manager/config"]["meter_slot_grid_power"]
    w = None if index == NO_METER else app.slots[index].get(POWER)  # None: no reading
    d["power_at_meter"] = float(d["power_at_meter"] if w is None else w)
    return d
