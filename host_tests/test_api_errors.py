"""Every API error path, against the running firmware: status, message, and nothing changed."""
import json
import pathlib

import pytest

from simproc import Sim


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    sim = Sim(tmp_path_factory.mktemp("flash"))
    yield sim
    sim.stop()


def snapshot(s):
    return {p: s.get(p) for p in ("power_manager/config", "power_manager/dynamic_load_config",
                                  "power_manager/debug_config", "power_manager/charge_mode",
                                  "power_manager/external_control", "meters/0/config")}


BAD_WRITES = [
    # path, body, status, words the message must contain
    ("power_manager/config", '{"guaranteed_power": 13', 400, ["parse JSON"]),
    ("power_manager/config", "[1, 2]", 400, ["must be an object"]),
    ("power_manager/config", "7", 400, ["must be an object"]),
    ("power_manager/config", '{"no_such_key": 1}', 400, ["unknown key 'no_such_key'"]),
    ("power_manager/config", '{"guaranteed_power": "1380"}', 400, ["'guaranteed_power'", "int"]),
    ("power_manager/config", '{"guaranteed_power": 1380.5}', 400, ["'guaranteed_power'", "int"]),
    ("power_manager/config", '{"excess_charging_enable": 1}', 400,
     ["'excess_charging_enable'", "bool"]),
    ("power_manager/config", '{"cloud_filter_mode": 4}', 400, ["'cloud_filter_mode'", "maximum 3"]),
    ("power_manager/config", '{"cloud_filter_mode": -1}', 400, ["'cloud_filter_mode'", "minimum 0"]),
    ("power_manager/config", '{"phase_switching_mode": 5}', 400,
     ["'phase_switching_mode'", "0, 1, 2, 3, 4"]),
    ("power_manager/config", '{"meter_slot_grid_power": 7}', 400, ["'meter_slot_grid_power'"]),
    ("power_manager/config", '{"excess_charging_enable": false, "default_mode": 2}', 400,
     ["'default_mode'", "excess_charging_enable"]),
    ("power_manager/config", '{"excess_charging_enable": true, "phase_switching_mode": 3}', 400,
     ["Can't enable excess charging when external control is enabled"]),
    ("power_manager/config", '{"meter_slot_grid_power": 2, "meter_slot_battery_power": 2}', 400,
     ["Grid and battery storage cannot use the same power meter"]),
    ("power_manager/config", '{"default_mode": 1, "guaranteed_power": 1380, "bogus": 1}', 400,
     ["unknown key 'bogus'"]),
    # What curl -d sends for an empty or form-style body, and trailing garbage.
    ("power_manager/config", "", 400, ["parse JSON"]),
    ("power_manager/config", "guaranteed_power=1380", 400, ["parse JSON"]),
    ("power_manager/config", '{"guaranteed_power": 1380} x', 400, ["parse JSON"]),
    ("power_manager/config", "null", 400, ["must be an object"]),
    ("power_manager/config", '{"guaranteed_power": null}', 400, ["'guaranteed_power'", "int"]),
    ("power_manager/config", '{"guaranteed_power": 100001}', 400, ["maximum 100000"]),
    ("power_manager/config", '{"target_power_from_grid": -100001}', 400, ["minimum -100000"]),
    ("power_manager/config", '{"default_mode": 4}', 400, ["'default_mode'", "maximum 3"]),
    ("power_manager/config", '{"battery_mode": 2}', 400, ["'battery_mode'", "maximum 1"]),
    ("power_manager/config", '{"battery_inverted": "false"}', 400, ["'battery_inverted'", "bool"]),
    ("power_manager/config", '{"battery_deadzone": -1}', 400, ["'battery_deadzone'", "minimum 0"]),
    ("power_manager/config", '{"meter_slot_battery_power": 7}', 400,
     ["'meter_slot_battery_power'"]),
    ("power_manager/dynamic_load_config", '{"meter_slot_grid_currents": 7}', 400,
     ["'meter_slot_grid_currents'", "maximum 6"]),
    ("power_manager/dynamic_load_config", '{"current_limit": -1}', 400, ["minimum 0"]),
    ("power_manager/dynamic_load_config", '{"enabled": "true"}', 400, ["'enabled'", "bool"]),
    ("power_manager/dynamic_load_config", '{"enabled": true, "current_limit": 10000}', 400,
     ["Invalid current limit. Must be at least 16A."]),
    ("power_manager/dynamic_load_config",
     '{"enabled": true, "current_limit": 20000, "largest_consumer_current": 25000}', 400,
     ["Largest consumer current cannot be above current limit."]),
    ("power_manager/dynamic_load_config", '{"safety_margin_pct": 51}', 400,
     ["'safety_margin_pct'", "maximum 50"]),
    ("power_manager/debug_config", '{"hysteresis_time": 5}', 400, ["'hysteresis_time'", "minimum 10"]),
    ("power_manager/debug_config", '{"hysteresis_time": 3601}', 400, ["maximum 3600"]),
    ("power_manager/charge_mode", '{"mode": 4}', 400, ["'mode'"]),
    ("power_manager/charge_mode", '"2"', 400, ["'mode'", "int"]),
    ("power_manager/charge_mode", '{"mode": 1, "x": 1}', 400, ["unknown key 'x'"]),
    ("power_manager/charge_mode", "{}", 400, ["missing key 'mode'"]),
    ("power_manager/charge_mode", "", 400, ["parse JSON"]),
    ("power_manager/charge_mode", "mode=2", 400, ["parse JSON"]),
    ("power_manager/charge_mode", "2.0", 400, ["'mode'", "int"]),
    ("power_manager/charge_mode", "true", 400, ["'mode'", "int"]),
    ("power_manager/charge_mode", "-1", 400, ["'mode'"]),
    ("power_manager/external_control", '{"phases_wanted": 0}', 400, ["Only 1 or 3 are allowed"]),
    ("power_manager/external_control", '"3"', 400, ["'phases_wanted'", "int"]),
    ("power_manager/external_control", '{"phases_wanted": 2}', 400,
     ["Invalid value for phases_wanted! Only 1 or 3 are allowed."]),
    ("power_manager/external_control", "0", 400, ["Only 1 or 3 are allowed"]),
    ("meters/0/config", '{"type": 9}', 400, ["'type'"]),
    ("meters/0/config", '{"value_ids": [74, 999]}', 400, ["unknown value id 999"]),
    ("meters/0/config", '{"value_ids": [74, 74]}', 400, ["twice"]),
    ("meters/0/config", '{"slave_id": 0}', 400, ["'slave_id'", "minimum 1"]),
    ("meters/0/update", "[1]", 400, ["not an API meter"]),
    ("power_manager/state", "{}", 405, ["read-only"]),
    ("power_manager/low_level_state", "{}", 405, ["read-only"]),
    ("meters/0/values", "{}", 405, ["read-only"]),
    ("no/such/object", "{}", 404, ["no/such/object"]),
]


@pytest.mark.parametrize("path,body,status,words", BAD_WRITES)
def test_bad_write_is_rejected_and_changes_nothing(s, path, body, status, words):
    before = snapshot(s)
    for method in ("PUT", "POST"):
        code, text = s.request(method, path, body,
                               {"Content-Type": "application/x-www-form-urlencoded"})
        assert code == status, (method, code, text)
        for w in words:
            assert w in text, (w, text)
    assert snapshot(s) == before


def test_pv_mode_rejected_while_excess_charging_disabled(s):
    old = s.get("power_manager/config")
    # default_mode 2 (the simulator's) needs excess charging: the pair is rejected...
    code, text = s.put("power_manager/config", {"excess_charging_enable": False})
    assert code == 400 and "'default_mode'" in text
    # ...and accepted together with a default mode that works without it.
    assert s.put("power_manager/config", {"excess_charging_enable": False,
                                          "default_mode": 0})[0] == 200
    # A charge mode in use that needs excess charging fell back to default_mode.
    assert s.get("power_manager/charge_mode") == {"mode": 0}
    try:
        for mode in (2, 3):
            code, text = s.put("power_manager/charge_mode", {"mode": mode})
            assert code == 400 and "excess_charging_enable" in text
        assert s.put("power_manager/charge_mode", "1")[0] == 200
        assert s.get("power_manager/charge_mode") == {"mode": 1}
        assert s.get("power_manager/config")["enabled"] is False  # derived: no PV, no DLM
    finally:
        assert s.put("power_manager/config", {
            "excess_charging_enable": True, "default_mode": old["default_mode"]})[0] == 200


def test_partial_write_keeps_other_keys(s):
    before = s.get("power_manager/config")
    assert s.put("power_manager/config", {"target_power_from_grid": -200})[0] == 200
    after = s.get("power_manager/config")
    assert after["target_power_from_grid"] == -200
    assert {k: v for k, v in after.items() if k != "target_power_from_grid"} == \
        {k: v for k, v in before.items() if k != "target_power_from_grid"}


VALID_WRITES = [
    # path, key, values at and inside the bounds (each written alone, then read back)
    ("power_manager/config", "guaranteed_power", [0, 100000, 1380]),
    ("power_manager/config", "target_power_from_grid", [-100000, 100000, -50]),
    ("power_manager/config", "cloud_filter_mode", [0, 1, 2, 3]),
    ("power_manager/config", "phase_switching_mode", [0, 1, 2, 4]),
    ("power_manager/config", "default_mode", [0, 1, 2, 3]),
    ("power_manager/config", "meter_slot_battery_power", [0, 6, 255]),
    ("power_manager/config", "battery_mode", [1, 0]),
    ("power_manager/config", "battery_inverted", [True, False]),
    ("power_manager/config", "battery_deadzone", [0, 10000, 100]),
    ("power_manager/dynamic_load_config", "current_limit", [16000, 1000000, 0]),
    ("power_manager/dynamic_load_config", "largest_consumer_current", [0, 1000000]),
    ("power_manager/dynamic_load_config", "safety_margin_pct", [0, 50]),
    ("power_manager/dynamic_load_config", "meter_slot_grid_currents", [0, 6]),
    ("power_manager/debug_config", "hysteresis_time", [10, 3600]),
]


@pytest.mark.parametrize("path,key,values", VALID_WRITES)
def test_valid_values_are_taken_and_read_back(s, path, key, values):
    before = s.get(path)
    try:
        for v in values:
            code, text = s.request("POST", path, json.dumps({key: v}),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
            assert code == 200, (v, text)
            after = s.get(path)
            assert after[key] == v and type(after[key]) is type(v)
            assert {k: x for k, x in after.items() if k != key} == \
                {k: x for k, x in before.items() if k != key}
    finally:
        assert s.put(path, {key: before[key]})[0] == 200


def test_unknown_path_and_method(s):
    assert s.request("GET", "power_manager/nope")[0] == 404
    for method in ("DELETE", "PATCH"):
        code, text = s.request(method, "power_manager/config", "{}")
        assert code == 405 and "Method not allowed" in text


def test_chunked_body_is_taken(s):
    # Once a 411; HTTP/1.1 servers must take chunked bodies (test_api_spec_pass.py has more).
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("PUT", "/power_manager/config", body=iter([b'{"guaranteed_power": 1390}']),
                 headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 200, r.read()
    assert s.get("power_manager/config")["guaranteed_power"] == 1390
    assert s.put("power_manager/config", {"guaranteed_power": 1380})[0] == 200


def test_body_over_4k_gets_413(s):
    body = json.dumps({"guaranteed_power": 1380, "pad": "x" * 5000})
    before = snapshot(s)
    code, _ = s.request("PUT", "power_manager/config", body)
    assert code == 413
    assert snapshot(s) == before


def test_deeply_nested_json_within_the_size_limit_is_a_400(s):
    # 4000 '[' fit in 4 KiB but the parser runs out of heap on them: once a 500 (MemoryError).
    before = snapshot(s)
    code, text = s.request("PUT", "power_manager/config", "[" * 4000)
    assert code == 400 and "nested too deeply" in text
    assert snapshot(s) == before


def test_api_meter_update(s):
    assert s.put("meters/5/config", {"type": 1, "value_ids": [74, 14, 18, 22]})[0] == 200
    code, text = s.put("meters/5/update", "[1, 2, 3]")
    assert code == 400 and "Expected 4 values" in text
    code, text = s.put("meters/5/update", '[1, 2, "3", 4]')
    assert code == 400 and "value id 18" in text
    code, text = s.put("meters/5/update", '{"74": 1}')
    assert code == 400 and "JSON array" in text
    assert s.get("meters/5/values") == {"74": None, "14": None, "18": None, "22": None}
    assert s.put("meters/5/update", "[-4067.8, 9.494999999999999, -1, 0]")[0] == 200
    assert s.get("meters/5/values") == {"74": -4067.8, "14": 9.495, "18": -1, "22": 0}
    state = s.get("meters/5/state")
    assert state["stale"] is False and state["readings"] == 1 and state["age_ms"] >= 0


def test_api_meter_rejects_numbers_too_large_for_the_readers(s):
    # 1.7976931348623157e308 is a finite JSON number, but what reads a slot made it inf: the
    # DLM's A -> mA (v * 1000) killed the control task with OverflowError when the slot fed
    # dynamic load management, and meters/N/values (round(v, 4)) answered `{"74": inf}`,
    # which is not JSON. Nothing a home meter reports comes near 1e9 (W, A, V, kWh, %).
    assert s.put("meters/6/config", {"type": 1, "value_ids": [74, 14, 18, 22]})[0] == 200
    try:
        assert s.put("meters/6/update", "[-4000, 5.5, 6, 7]")[0] == 200
        for body, vid in (("[1.7976931348623157e308, 1, 1, 1]", 74),
                          ("[1, 1, -1e300, 1]", 18),
                          ("[1, 1, 1, 1000000001]", 22),
                          ("[-1e10, 1, 1, 1]", 74)):
            code, text = s.put("meters/6/update", body)
            assert code == 400 and "value id %d" % vid in text and "1e9" in text, (body, text)
        assert s.get("meters/6/values") == {"74": -4000, "14": 5.5, "18": 6, "22": 7}
        assert s.put("meters/6/update", "[-1e9, 1000000000, 0, 0]")[0] == 200  # the bounds
        assert s.get("meters/6/values") == {"74": -1e9, "14": 1000000000, "18": 0, "22": 0}
    finally:
        assert s.put("meters/6/config", {"type": 0})[0] == 200


def test_a_secret_written_back_as_the_null_it_reads_keeps_its_value(s):
    # A client may PUT what it GOT: mqtt/config took its own null password back, network/wifi
    # answered 400 "Key 'ap_password' must be of type string" to it.
    for path, key in (("network/wifi", "ap_password"), ("mqtt/config", "password")):
        saved = pathlib.Path(s.sim_dir) / (path.replace("/", "_") + ".json")
        assert s.put(path, {key: "12345678"})[0] == 200
        try:
            got = s.get(path)
            assert got[key] is None
            code, text = s.put(path, json.dumps(got))
            assert code == 200, (path, text)
            assert s.get(path) == got
            assert json.loads(saved.read_text())[key] == "12345678"
        finally:
            assert s.put(path, {key: ""})[0] == 200
        assert json.loads(saved.read_text())[key] == ""


def test_config_error_flags_for_meters(s):
    def flags():
        return s.get("power_manager/state")["config_error_flags"]
    cfg = s.get("power_manager/config")
    dlm = s.get("power_manager/dynamic_load_config")
    try:
        assert flags() & (8 | 16) == 0                     # the simulated grid meter in slot 3
        assert s.put("power_manager/config", {"meter_slot_grid_power": 6})[0] == 200
        assert flags() & 8                                 # slot 6 holds no meter
        assert s.put("power_manager/config", {"meter_slot_grid_power": 255})[0] == 200
        assert flags() & 8                                 # no grid slot at all
        assert s.put("power_manager/config", {"excess_charging_enable": False,
                                              "default_mode": 0})[0] == 200
        assert flags() & 8 == 0                            # no excess charging, no meter needed
        assert s.put("power_manager/dynamic_load_config",
                     {"enabled": True, "meter_slot_grid_currents": 6})[0] == 200
        assert flags() & 16                                # DLM on a slot without currents
        assert s.put("power_manager/dynamic_load_config",
                     {"meter_slot_grid_currents": 3})[0] == 200
        assert flags() & 16 == 0
    finally:
        assert s.put("power_manager/dynamic_load_config", dlm)[0] == 200
        assert s.put("power_manager/config", {k: cfg[k] for k in (
            "meter_slot_grid_power", "excess_charging_enable", "default_mode")})[0] == 200
