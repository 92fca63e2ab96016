# Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery):
# one retained config message per entity on
#   <discovery_prefix>/<component>/<device_id>/<object_id>/config
# all carrying the same `device` block, so Home Assistant groups them under one device, and a
# unique_id "<device_id>_<object_id>". An empty retained message on the same topic removes the
# entity (and the device with its last entity).
#
# Imported only while the bridge publishes or removes the configs, then unloaded
# (firmware.mqtt.unload): its code and table cost heap for those moments only. The table is one
# long string per entity and the payloads are formatted from long strings: short string
# constants (and names) would be interned, and interned strings are never freed. Not one string
# for the whole table: loading it would need one free block of 1.5 KB, which a fragmented
# 100 KB heap may not have.
import json


def entries(device_id, prefix, discovery_prefix, read_only, remove=False):
    """Yield (topic, payload) for every entity config, then an empty payload for the charge
    mode published earlier as the other component (read_only switched). With `remove`, every
    one of those topics with an empty payload: Home Assistant removes the entities."""
    # power_manager/charge_mode "mode" 0..3 (spec) as Home Assistant select options
    modes = '["Fast", "Off", "PV", "Min + PV"]'
    # One entity per string: component;object_id;name;state path (under the prefix);value
    # template; the entity's further members (JSON).
    table = (
        "sensor;grid_power;Grid power;power_manager/low_level_state;"
        "{{ value_json.power_at_meter | round(0) }};"
        '"device_class": "power", "state_class": "measurement", "unit_of_measurement": "W"',
        "sensor;available_current;Available current;power_manager/low_level_state;"
        "{{ value_json.charge_manager_available_current }};"
        '"device_class": "current", "state_class": "measurement", "unit_of_measurement": "mA"',
        "sensor;allocated_current;Allocated current;power_manager/low_level_state;"
        "{{ value_json.charge_manager_allocated_current }};"
        '"device_class": "current", "state_class": "measurement", "unit_of_measurement": "mA"',
        "sensor;active_phases;Active phases;power_manager/low_level_state;"
        '{{ 3 if value_json.is_3phase else 1 }};"state_class": "measurement"',
        "sensor;switching_state;Phase switching state;power_manager/low_level_state;"
        '{{ value_json.switching_state }};"entity_category": "diagnostic"',
        "sensor;external_phase_request;External phase request;power_manager/external_control;"
        "{{ value_json.phases_wanted }};",
        "sensor;config_errors;Config error flags;power_manager/state;"
        '{{ value_json.config_error_flags }};"entity_category": "diagnostic"',
        "binary_sensor;config_error;Config error;power_manager/state;"
        "{{ 'ON' if value_json.config_error_flags else 'OFF' }};"
        '"device_class": "problem", "entity_category": "diagnostic"',
        # charging_blocked bits 1 and 2: grid / battery meter data missing or stale, set in PV
        # and Min+PV only (docs/control.md; Fast and Off ignore the meter): the name says so.
        "binary_sensor;meter_stale;PV control: meter data stale;power_manager/low_level_state;"
        "{{ 'ON' if (value_json.charging_blocked | int) | bitwise_and(3) else 'OFF' }};"
        '"device_class": "problem", "entity_category": "diagnostic"',
    )
    q = json.dumps
    # The charge mode: a select, or a sensor when MQTT is read-only (the other one goes); mode
    # number -> option name and back, as Jinja (the select's state and command).
    component, other = ("sensor;select" if read_only else "select;sensor").split(";")
    extra = "" if read_only else '"command_topic": %s, "command_template": %s, "options": %s' % (
        q(prefix + "/power_manager/charge_mode_update"),
        q('{"mode": {{ {"Min + PV": 3, "Fast": 0, "Off": 1, "PV": 2}[value] }}}'), modes)
    mode = "%s;charge_mode;Charge mode;power_manager/charge_mode;%s;%s" % (
        component, "{{ %s[value_json.mode] if value_json.mode in range(4) else None }}" % modes,
        extra)
    device = ('{"identifiers": [%s], "name": %s, "manufacturer": "pvcc", '
              '"model": "PV excess charging controller"}'
              % (q(device_id), q("PV charge controller " + device_id[-6:])))
    for line in (mode,) + table:
        component, object_id, name, path, tpl, extra = line.split(";", 5)
        topic = "%s/%s/%s/%s/config" % (discovery_prefix, component, device_id, object_id)
        yield topic, "" if remove else (
            '{"name": %s, "unique_id": %s, "state_topic": %s, "availability_topic": %s, '
            '"payload_available": "online", "payload_not_available": "offline", "device": %s, '
            '"origin": {"name": "pvcc firmware"}, "value_template": %s%s}'
            % (q(name), q(device_id + "_" + object_id), q(prefix + "/" + path),
               q(prefix + "/availability"), device, q(tpl), ", " + extra if extra else ""))
    yield "%s/%s/%s/charge_mode/config" % (discovery_prefix, other, device_id), ""
