# Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery):
# one retained config message per entity on
#   <discovery_prefix>/<component>/<device_id>/<object_id>/config
# all carrying the same `device` block, so Home Assistant groups them under one device, and a
# unique_id "<device_id>_<object_id>". An empty retained message on the same topic removes the
# entity (and the device with its last entity).
import json

from firmware.mqtt.client import COMMAND

_LLS = "power_manager/low_level_state"
_ORIGIN = {"name": "pvcc firmware"}  # who published the discovery message (shown in HA's logs)
_MODES = ("Fast", "Off", "PV", "Min + PV")  # power_manager/charge_mode "mode" 0..3 (spec)

# (component, object_id, name, path, value_template, extra keys)
_ENTITIES = (
    ("sensor", "grid_power", "Grid power", _LLS, "{{ value_json.power_at_meter | round(0) }}",
     {"device_class": "power", "state_class": "measurement", "unit_of_measurement": "W"}),
    ("sensor", "available_current", "Available current", _LLS,
     "{{ value_json.charge_manager_available_current }}",
     {"device_class": "current", "state_class": "measurement", "unit_of_measurement": "mA"}),
    ("sensor", "allocated_current", "Allocated current", _LLS,
     "{{ value_json.charge_manager_allocated_current }}",
     {"device_class": "current", "state_class": "measurement", "unit_of_measurement": "mA"}),
    ("sensor", "active_phases", "Active phases", _LLS,
     "{{ 3 if value_json.is_3phase else 1 }}", {"state_class": "measurement"}),
    ("sensor", "switching_state", "Phase switching state", _LLS,
     "{{ value_json.switching_state }}", {"entity_category": "diagnostic"}),
    ("sensor", "external_phase_request", "External phase request",
     "power_manager/external_control", "{{ value_json.phases_wanted }}", {}),
    ("sensor", "config_errors", "Config error flags", "power_manager/state",
     "{{ value_json.config_error_flags }}", {"entity_category": "diagnostic"}),
    ("binary_sensor", "config_error", "Config error", "power_manager/state",
     "{{ 'ON' if value_json.config_error_flags else 'OFF' }}",
     {"device_class": "problem", "entity_category": "diagnostic"}),
    # charging_blocked bits 1 and 2: grid / battery meter data missing or stale (docs/control.md)
    ("binary_sensor", "meter_stale", "Meter data stale", _LLS,
     "{{ 'ON' if (value_json.charging_blocked | int) | bitwise_and(3) else 'OFF' }}",
     {"device_class": "problem", "entity_category": "diagnostic"}),
)

_MODE_PATH = "power_manager/charge_mode"
# mode number -> option name and back, as Jinja (the select's state and command)
_MODE_STATE_TPL = "{{ %s[value_json.mode] if value_json.mode in range(%d) else None }}" % (
    json.dumps(list(_MODES)), len(_MODES))
_MODE_CMD_TPL = '{"mode": {{ %s[value] }}}' % json.dumps({m: i for i, m in enumerate(_MODES)})


class Discovery:
    def __init__(self, client, device_id, prefix, discovery_prefix, read_only, sw_version=""):
        self.client = client
        self.device_id = device_id
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.read_only = read_only
        self.device = {"identifiers": [device_id], "name": "PV charge controller " + device_id[-6:],
                       "manufacturer": "pvcc", "model": "PV excess charging controller"}
        if sw_version:
            self.device["sw_version"] = sw_version

    def _topic(self, component, object_id):
        return "%s/%s/%s/%s/config" % (self.discovery_prefix, component, self.device_id, object_id)

    def _base(self, object_id, name, path):
        return {"name": name, "unique_id": "%s_%s" % (self.device_id, object_id),
                "state_topic": "%s/%s" % (self.prefix, path),
                "availability_topic": self.prefix + "/availability",
                "payload_available": "online", "payload_not_available": "offline",
                "device": self.device, "origin": _ORIGIN}

    def entities(self):
        """[(topic, payload_dict)] of every entity."""
        out = []
        mode = self._base("charge_mode", "Charge mode", _MODE_PATH)
        mode["value_template"] = _MODE_STATE_TPL
        if self.read_only:
            out.append((self._topic("sensor", "charge_mode"), mode))
        else:
            mode["command_topic"] = "%s/%s_update" % (self.prefix, _MODE_PATH)
            mode["command_template"] = _MODE_CMD_TPL
            mode["options"] = list(_MODES)
            out.append((self._topic("select", "charge_mode"), mode))
        for component, object_id, name, path, tpl, extra in _ENTITIES:
            cfg = self._base(object_id, name, path)
            cfg["value_template"] = tpl
            cfg.update(extra)
            out.append((self._topic(component, object_id), cfg))
        return out

    def topics(self):
        """Every config topic this device may have published (either charge mode component)."""
        return [t for t, _ in self.entities()] + [
            self._topic("sensor" if not self.read_only else "select", "charge_mode")]

    def publish(self):
        for topic, cfg in self.entities():
            self.client.publish(topic, json.dumps(cfg), True, 1, COMMAND)
        # A charge mode published earlier as the other component (read-only switched) goes.
        self.client.publish(self.topics()[-1], "", True, 1, COMMAND)

    def remove(self):
        for topic in self.topics():
            self.client.publish(topic, "", True, 1, COMMAND)
