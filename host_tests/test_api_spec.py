"""The spec's curl commands, run verbatim against the running firmware (what `make sim` runs)."""
import json
import re
import subprocess

import pytest

from mp import SHARED

SPEC = SHARED / "spec" / "power_manager_api.txt"

# Every key the spec documents for each readable object, with its JSON type.
DOCUMENTED = {
    "power_manager/config": {
        "enabled": bool, "phase_switching_mode": int, "excess_charging_enable": bool,
        "default_mode": int, "meter_slot_grid_power": int, "target_power_from_grid": int,
        "guaranteed_power": int, "cloud_filter_mode": int, "meter_slot_battery_power": int,
        "battery_mode": int, "battery_inverted": bool, "battery_deadzone": int},
    "power_manager/dynamic_load_config": {
        "enabled": bool, "meter_slot_grid_currents": int, "current_limit": int,
        "largest_consumer_current": int, "safety_margin_pct": int},
    "power_manager/state": {"config_error_flags": int, "external_control": int},
    "power_manager/low_level_state": {
        "power_at_meter": float, "power_at_meter_filtered": int, "power_available": int,
        "power_available_filtered": int, "overall_min_power": int, "threshold_3to1": int,
        "threshold_1to3": int, "charge_manager_available_current": int,
        "charge_manager_allocated_current": int, "max_current_limited": int,
        "uptime_past_hysteresis": bool, "is_3phase": bool, "wants_3phase": bool,
        "wants_3phase_last": bool, "is_on_last": bool, "wants_on_last": bool,
        "phase_state_change_blocked": bool, "phase_state_change_delay": int,
        "on_state_change_blocked": bool, "on_state_change_delay": int, "charging_blocked": int,
        "switching_state": int},
    "power_manager/charge_mode": {"mode": int},
    "power_manager/external_control": {"phases_wanted": int},
    "power_manager/debug_config": {"hysteresis_time": int},
}


def spec_curl_commands():
    """Each `curl ...` command of the spec, with its multi-line -d '...' body, as written."""
    lines = SPEC.read_text().splitlines()
    cmds, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("curl "):
            cmd = line
            if cmd.count("'") % 2:  # a quoted body continues on the next lines
                while True:
                    i += 1
                    cmd += "\n" + lines[i]
                    if lines[i].count("'") % 2:
                        break
            cmds.append(cmd)
        i += 1
    return cmds


def test_spec_has_the_commands_we_expect():
    cmds = spec_curl_commands()
    reads = [c for c in cmds if " -d " not in c]
    writes = [c for c in cmds if " -d " in c]
    assert len(reads) == 5 and len(writes) == 5, cmds


def _curl(cmd, host):
    proc = subprocess.run(["bash", "-c", cmd + " -s -o /dev/stdout -w '\\n%{http_code}'"],
                          env={"HOST": host, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=20)
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


def _check_read(path, body):
    obj = json.loads(body)
    for key, typ in DOCUMENTED[path].items():
        if path == "power_manager/config" and key not in obj:
            continue  # the spec's example omits the battery keys; checked in the test below
        assert key in obj, (path, key)
        assert isinstance(obj[key], typ) and (typ is not int or not isinstance(obj[key], bool)), \
            (path, key, obj[key])


def test_spec_curl_commands_verbatim(sim):
    s = sim(via_make=True)
    host = "127.0.0.1:%d" % s.port
    cmds = spec_curl_commands()
    external_writes = [c for c in cmds if "external_control -d" in c]
    for cmd in cmds:
        if cmd in external_writes:
            continue
        path = re.search(r"http://\$HOST/(\S+)", cmd).group(1)
        code, body = _curl(cmd, host)
        assert code == 200, (cmd, code, body)
        if " -d " not in cmd:
            _check_read(path, body)
    # The writes took effect: the spec's config example and charge mode 2 (both forms).
    cfg = s.get("power_manager/config")
    assert cfg["meter_slot_grid_power"] == 3 and cfg["guaranteed_power"] == 1380
    assert cfg["cloud_filter_mode"] == 2 and cfg["phase_switching_mode"] == 1
    assert s.get("power_manager/charge_mode") == {"mode": 2}


# strict: this turns into a failure as soon as it passes, so the marker cannot outlive its reason.
def test_spec_external_control_commands_verbatim(sim):
    # At night (SIM_START 0) the simulated site has no surplus, so no automatic phase switch is
    # running when the test hands phase control to the external energy manager.
    s = sim(extra=("--start", "0"))
    host = "127.0.0.1:%d" % s.port
    external_writes = [c for c in spec_curl_commands() if "external_control -d" in c]
    assert len(external_writes) == 2
    # external_control "can be written when external_control in power_manager/state is 0":
    # switch phase control to external (which excludes excess charging), then the spec's writes.
    assert s.put("power_manager/charge_mode", "0")[0] == 200
    assert s.put("power_manager/config", {"excess_charging_enable": False, "default_mode": 0,
                                          "phase_switching_mode": 3})[0] == 200
    assert s.get("power_manager/state")["external_control"] == 0
    for cmd in external_writes:
        code, body = _curl(cmd, host)
        assert code == 200, (cmd, code, body)
    assert s.get("power_manager/external_control") == {"phases_wanted": 1}


@pytest.mark.parametrize("path", sorted(DOCUMENTED))
def test_every_documented_key_and_type(sim, path):
    s = sim()
    obj = s.get(path)
    for key, typ in DOCUMENTED[path].items():
        assert key in obj, key
        assert isinstance(obj[key], typ) and (typ is not int or not isinstance(obj[key], bool)), \
            (key, obj[key])
