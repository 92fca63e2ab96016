"""Safety audit of the charger side (house fuse, contactor, chargers), on the Unix port: each test
reproduces a way the fuse or the contactor was put at risk, driving the real glue
(firmware/chargers/manager.py) as `make sim` runs it or with plain charger objects."""
import json

from mp import run_mp
from test_chargers_sim import _APP

# run() with the car's currents recorded *before* the site step in which the contactor moved
# (after it the simulated car has restarted at 0 A).
_UNDER_LOAD = """
hot = []
def run_hot(ms):
    for _ in range(ms // 250):
        clock.advance(250)
        now = clock.ticks_ms()
        before = app.sim_contactor.closed_3p
        draw = list(app.sim_site.ev.phase_currents_ma)
        if now % 500 == 0:
            sim.exchange(now)
            app.sim_tick(500, now)
        if app.sim_contactor.closed_3p != before:
            hot.append((now, draw))
        app.control.step(now, 250)
"""


def _run(tmp_path, body):
    out = run_mp(_APP % str(tmp_path) + _UNDER_LOAD + body, heap="2M", timeout=120)
    return json.loads(out.splitlines()[-1])


def test_contactor_waits_for_a_confirmed_zero_not_an_old_idle_reading(tmp_path):
    # The car pauses by itself (BMS) while the wallbox offers 16 A, so the charger reports 0 A.
    # Then the charger stops answering (it stays 'reachable' for 32 s) and a switch is asked
    # for. Its last reading says 0 A, but it never took the 0 A set-point: the pilot still
    # offers 16 A and the car resumes. The contactor must not move on that old reading.
    r = _run(tmp_path, """
fast_external()
w('power_manager/external_control', 3)
run(60000)
ev = app.sim_site.ev
ev.full = True
run(5000)
idle = [sim.charging, list(sim.phase_currents_ma), sim.limit_ma]
sim.dead = True
run(500)
ev.full = False          # the car resumes behind the silent wallbox
run(2500)
w('power_manager/external_control', 1)
run_hot(20000)
print(json.dumps({'idle': idle, 'moves': hot, 'offered': sim.offered_ma(),
                  'cs': app.registry.read('power_manager/contactor_state')}))
""")
    assert r["idle"] == [False, [0, 0, 0], 16000]
    assert r["offered"] == 16000          # the silent wallbox never took the pause
    assert r["moves"] == []               # so the contactor must not move
    assert r["cs"]["last_result"] == 2 and r["cs"]["relay_3p"] is True
