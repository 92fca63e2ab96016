"""The control task's glue: meter slots -> the power manager's inputs (firmware/control_task.py)."""
import json

from mp import run_mp

_APP = """
import json
from firmware.app import App
from firmware.board.unix import UnixBoard
from firmware.clock import ManualClock
clock = ManualClock(0)
app = App(UnixBoard(%r), clock, subsystems=())
pm = app.pm
def w(path, body):
    app.registry.write(path, json.dumps(body))
def step(ms):
    clock.advance(ms)
    app.control.step(clock.ticks_ms(), ms)
def seen():
    return [pm.grid_w, pm.battery_w, pm.charging_blocked & 3]
"""


def test_a_power_the_meter_marks_invalid_is_no_sample(tmp_path):
    # An RS485 meter that answers but marks its total power invalid (a NaN float, ABB's
    # 0x7FFFFFFF: the decoder leaves None in the slot) used to read as 0 W, "balanced", for as
    # long as it kept answering so. It is no sample: the last valid power holds and ages as if
    # the meter had fallen silent, and PV control is suspended after stale_ms (bits 1, 2).
    out = json.loads(run_mp(_APP % str(tmp_path) + """
w('meters/0/config', {'type': 1, 'value_ids': [74]})
w('meters/1/config', {'type': 1, 'value_ids': [74]})
w('power_manager/config', {'meter_slot_grid_power': 0, 'meter_slot_battery_power': 1})
w('power_manager/charge_mode', 2)
res = []
app.slots[0].update([-3000], clock.ticks_ms())
app.slots[1].update([500], clock.ticks_ms())
step(250)
res.append(seen())
for i in range(4 * 200):              # 200 s of readings every second, power invalid
    if i % 4 == 0:
        app.slots[0].update([None], clock.ticks_ms())
        app.slots[1].update([None], clock.ticks_ms())
    step(250)
    if i == 40:
        res.append(seen())            # 10 s: held, not yet stale
res.append(seen())                    # 200 s > stale_ms (125 s): suspended
app.slots[0].update([-2000], clock.ticks_ms())
app.slots[1].update([300], clock.ticks_ms())
step(250)
res.append(seen())                    # valid again: at once
print(json.dumps(res))
""").splitlines()[-1])
    assert out == [[-3000, 500, 0], [-3000, 500, 0], [-3000, 500, 3], [-2000, 300, 0]], out
