"""charge_manager/config, power_manager/contactor_config, contactor_reset and the
config_error_flags bits of the charger side, through the registry on the Unix port."""
import json

from mp import run_mp

_APP = """
import json
from firmware.app import App
from firmware.board.unix import UnixBoard
from firmware.clock import ManualClock
from firmware.chargers import manager
from firmware.api.registry import ApiError
clock = ManualClock(0)
app = App(UnixBoard(%r), clock, subsystems=(manager.install,))
def w(path, body):
    try:
        app.registry.write(path, body if isinstance(body, str) else json.dumps(body))
        return 200
    except ApiError as e:
        return [e.status, e.message]
def flags():
    app.control.step(clock.ticks_ms(), 250)
    return app.registry.read('power_manager/state')['config_error_flags']
"""


def _run(tmp_path, body):
    out = run_mp(_APP % str(tmp_path) + body, heap="1M")
    return [json.loads(x) for x in out.splitlines() if not x.startswith(("chargers:", "config:"))]


def test_bad_charger_configs_are_rejected_and_change_nothing(tmp_path):
    bad = [
        {"chargers": "x"},
        {"chargers": [{"name": "a"}]},
        {"chargers": [{"name": "a", "type": "tesla"}]},
        {"chargers": [{"name": "a", "type": "warp_http"}]},
        {"chargers": [{"name": "a", "type": "heidelberg", "address": 0}]},
        {"chargers": [{"name": "a", "type": "heidelberg", "max_current": 40000}]},
        {"chargers": [{"name": "a", "type": "heidelberg", "min_current": 3000}]},
        {"chargers": [{"name": "a", "type": "heidelberg", "colour": 1}]},
        {"chargers": [{"name": "a", "type": "heidelberg"}, {"name": "a", "type": "evse_wb"}]},
        {"chargers": [{"name": "c%d" % i, "type": "evse_wb", "address": i + 1} for i in range(17)]},
        {"fallback_current": 3000},
        {"maximum_available_current": -1},
    ]
    out = _run(tmp_path, "\n".join(
        "print(json.dumps(w('charge_manager/config', %r)))" % json.dumps(b) for b in bad) + """
print(json.dumps(app.registry.read('charge_manager/config')))
print(json.dumps(w('charge_manager/config', {'chargers': [{'name': 'garage', 'type': 'warp_http',
    'host': '127.0.0.1:1', 'max_current': 16000}], 'maximum_available_current': 32000})))
print(json.dumps([c.name for c in app.chargers]))
""")
    msgs = out[:len(bad)]
    for m in msgs:
        assert m[0] == 400, m
    assert "array of objects" in msgs[0][1]
    assert "missing key 'type'" in msgs[1][1]
    assert "unknown type 'tesla'" in msgs[2][1]
    assert "needs a host" in msgs[3][1]
    assert "'address'" in msgs[4][1] and "'max_current'" in msgs[5][1]
    assert "min_current" in msgs[6][1] and "unknown key 'colour'" in msgs[7][1]
    assert "used twice" in msgs[8][1] and "above the maximum 16" in msgs[9][1]
    assert "fallback_current" in msgs[10][1]
    assert out[len(bad)]["chargers"] == []
    assert out[len(bad) + 1] == 200
    assert out[len(bad) + 2] == ["garage"]


def test_contactor_config_and_reset(tmp_path):
    out = _run(tmp_path, """
print(json.dumps(w('power_manager/contactor_config', {'cp_off_time_s': 5})))
print(json.dumps(w('power_manager/contactor_config', {'cp_off_time_s': 121})))
print(json.dumps(w('power_manager/contactor_reset', 'true')))
print(json.dumps(w('power_manager/contactor_config', {'contactor_installed': True,
    'feedback_pin': 'fb', 'cp_off_time_s': 45})))
print(json.dumps(app.registry.read('power_manager/contactor_state')))
print(json.dumps(w('power_manager/contactor_reset', '{"reset": false}')))
print(json.dumps(w('power_manager/contactor_reset', '{"reset": true}')))
print(json.dumps(w('power_manager/contactor_state', '{}')))
""")
    assert out[0][0] == 400 and "below the minimum 10" in out[0][1]
    assert out[1][0] == 400 and "above the maximum 120" in out[1][1]
    assert out[2][0] == 400 and "No contactor" in out[2][1]
    assert out[3] == 200
    assert out[4]["installed"] is True and out[4]["feedback"] == 0
    assert out[5][0] == 400 and out[6] == 200
    assert out[7][0] == 405


def test_config_error_flags_bits_1_2_4(tmp_path):
    out = _run(tmp_path, """
w('power_manager/config', {'excess_charging_enable': False, 'default_mode': 0})
print(flags())                                    # no chargers, no maximum
w('charge_manager/config', {'chargers': [{'name': 'a', 'type': 'evse_wb'}]})
print(flags())                                    # maximum total current missing
w('charge_manager/config', {'maximum_available_current': 32000})
print(flags())
w('power_manager/config', {'phase_switching_mode': 0})
print(flags())                                    # automatic switching without a contactor
w('power_manager/contactor_config', {'contactor_installed': True})
print(flags())
""")
    assert out == [6, 2, 0, 1, 0]


def test_config_code_is_not_kept_after_use(tmp_path):
    # cm_config.py (setup, checks, config changes) is imported per call and dropped. Nothing may
    # keep it alive: a function of it held by a config object or the registry would keep its
    # whole module (~7 KB) on the heap.
    out = _run(tmp_path, """
import sys
w('charge_manager/config', {'chargers': [{'name': 'a', 'type': 'warp_http', 'host': 'x'}]})
w('power_manager/contactor_config', {'contactor_installed': True})
w('power_manager/dynamic_load_config', {'enabled': True})
w('power_manager/contactor_reset', 'true')
held = []
for c in app.configs.values():
    held.append(c.check)
    held.extend(getattr(c, '_listeners', ()))
for p in app.registry.paths():
    o = app.registry.get_object(p)
    held.extend(o if type(o) is tuple else [o])
m = app.charge_manager
held.extend([m.dlm_step, app.distribute])
print(json.dumps(['firmware.chargers.cm_config' in sys.modules,
                  hasattr(sys.modules['firmware.chargers'], 'cm_config'),
                  [p for p in held if 'check_chargers' in getattr(p, '__globals__', ())]]))
""")
    assert out[-1] == [False, False, []]


def test_a_relay_pin_the_board_does_not_have_is_reported(tmp_path):
    # On the ESP32 board.pin() raises for a name board.json does not map; the Unix board maps
    # any name, so a board without 'relay9' and 'aux' stands in. The config write
    # itself is valid (a pin map may change); contactor_state says why there is no contactor.
    out = run_mp(_APP.replace("app = App(UnixBoard(%r)", """class Board(UnixBoard):
    def pin(self, name, out=True):
        if name in ('relay9', 'aux'):
            raise ValueError("board.json: no gpio for pin '%%s'" %% name)
        return UnixBoard.pin(self, name, out)
app = App(Board(%r)""") % str(tmp_path) + """
def cs():
    s = app.registry.read('power_manager/contactor_state')
    return [s['installed'], s['config_error']]
print(json.dumps(w('power_manager/contactor_config', {'contactor_installed': True, 'relay_pin': 'relay9'})))
print(json.dumps(cs()))
w('power_manager/contactor_config', {'relay_pin': 'contactor', 'feedback_pin': 'aux'})
print(json.dumps(cs()))
w('power_manager/contactor_config', {'feedback_pin': 'contactor_feedback'})
print(json.dumps(cs()))
w('power_manager/contactor_config', {'contactor_installed': False})
print(json.dumps(cs()))
""", heap="1M")
    out = [json.loads(x) for x in out.splitlines() if not x.startswith(("chargers:", "config:", "contactor:"))]
    assert out[0] == 200
    assert out[1] == [False, "board.json: no gpio for pin 'relay9'"]
    assert out[2] == [False, "board.json: no gpio for pin 'aux'"]
    assert out[3] == [True, ""]
    assert out[4] == [False, ""]


def test_a_bus_address_used_twice_is_rejected(tmp_path):
    # Every device on the RS485 bus needs its own id: a Modbus wallbox configured at the address
    # of another wallbox or of an RS485 meter would send its set-points to that device (a meter's
    # holding registers) and the meter's readings would come from the wallbox.
    out = _run(tmp_path, """
print(json.dumps(w('meters/2/config', {'type': 2, 'model': 'sdm630', 'slave_id': 5})))
print(json.dumps(w('charge_manager/config', {'chargers': [{'name': 'a', 'type': 'heidelberg', 'address': 5}]})))
print(json.dumps(w('charge_manager/config', {'chargers': [{'name': 'a', 'type': 'heidelberg', 'address': 3},
    {'name': 'b', 'type': 'evse_wb', 'address': 3}]})))
print(json.dumps(w('charge_manager/config', {'chargers': [{'name': 'a', 'type': 'heidelberg'},
    {'name': 'b', 'type': 'evse_wb', 'address': 3}, {'name': 'c', 'type': 'warp_http', 'host': 'x', 'address': 3}]})))
print(json.dumps(w('meters/4/config', {'type': 2, 'model': 'sdm630', 'slave_id': 3})))
print(json.dumps(w('meters/4/config', {'type': 2, 'model': 'sdm630', 'slave_id': 1})))
print(json.dumps(w('meters/4/config', {'type': 2, 'model': 'sdm630', 'slave_id': 5})))
print(json.dumps(w('meters/4/config', {'type': 2, 'model': 'sdm630', 'slave_id': 6})))
print(json.dumps([app.registry.read('meters/%d/config' % i)['slave_id'] for i in (2, 4)]))
print(json.dumps([c['name'] for c in app.registry.read('charge_manager/config')['chargers']]))
""")
    assert out[0] == 200
    assert out[1][0] == 400 and "address 5" in out[1][1] and "meters/2/config" in out[1][1], out[1]
    assert out[2][0] == 400 and "address 3 is used twice" in out[2][1], out[2]
    assert out[3] == 200  # 1 (the default) and 3; a warp_http charger is not on the bus
    assert out[4][0] == 400 and "'slave_id': 3" in out[4][1] and "'b'" in out[4][1], out[4]
    assert out[5][0] == 400 and "'slave_id': 1" in out[5][1] and "'a'" in out[5][1], out[5]
    # Two meters at one id: the other slot reads the same meter (allowed, e.g. a test setup).
    assert out[6] == 200 and out[7] == 200
    assert out[8] == [5, 6] and out[9] == ["a", "b", "c"]
