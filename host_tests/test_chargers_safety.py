"""Safety audit of the charger side (house fuse, contactor, chargers), on the Unix port: each test
reproduces a way the fuse or the contactor was put at risk, driving the real glue
(firmware/chargers/manager.py) as `make sim` runs it or with plain charger objects."""
import json

from mp import run_mp
from test_chargers_sim import KEEPS_DRAWING, _run


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
n = len(moves)
run(20000)
print(json.dumps({'idle': idle, 'moves': moves[n:], 'offered': sim.offered_ma(),
                  'cs': app.registry.read('power_manager/contactor_state')}))
""")
    assert r["idle"] == [False, [0, 0, 0], 16000]
    assert r["offered"] == 16000          # the silent wallbox never took the pause
    assert r["moves"] == []               # so the contactor must not move
    assert r["cs"]["last_result"] == 2 and r["cs"]["relay_3p"] is True


# DLM through the glue: grid meter in slot 5 (L1..L3 currents) = house + the simulated car.
_DLM = """
fast_external()
w('power_manager/external_control', 3)
w('meters/5/config', {'type': 1, 'value_ids': [14, 18, 22]})
w('power_manager/dynamic_load_config', {'enabled': True, 'meter_slot_grid_currents': 5,
  'current_limit': 35000, 'largest_consumer_current': 32000, 'safety_margin_pct': 0})
house = [2000, 2000, 2000]
extra = [0, 0, 0]        # what chargers outside the simulated car draw
def grid_ma():
    ev = app.sim_site.ev.phase_currents_ma
    return [house[p] + ev[p] + extra[p] for p in range(3)]
def run_m(ms):
    worst = 0
    for _ in range(ms // 500):
        app.registry.write('meters/5/update', json.dumps([g / 1000 for g in grid_ma()]))
        run(500, False)
        worst = max(worst, max(grid_ma()))
    return worst
"""


def test_dlm_is_not_blinded_by_an_absurd_charger_reading(tmp_path):
    # The wallbox answers with a CRC-valid but absurd phase current (0xFFFF x 0.1 A, a Heidelberg
    # register read as garbage) while the car really draws ~15 A. Then the 32 A consumer
    # switches on L1: the chargers must be cut within a second, as with a sane reading.
    r = _run(tmp_path, _DLM + """
run_m(60000)
before = app.pm.charge_manager_allocated_current
real = sim.exchange
def garbled(now):
    real(now)
    sim.phase_currents_ma[0] = 6553500
sim.exchange = garbled
run_m(5000)
house[0] = 34000
t0 = clock.ticks_ms()
cut = None
for i in range(40):
    run_m(500)
    if cut is None and sim.limit_ma == 0:
        cut = clock.ticks_ms() - t0
print(json.dumps({'before': before, 'cut': cut, 'grid': grid_ma(), 'set': sim.limit_ma}))
""")
    assert r["before"] >= 14000
    assert r["cut"] is not None and r["cut"] <= 1000


def test_dlm_cuts_the_others_when_a_charger_ignores_its_set_point(tmp_path):
    # Two chargers: the simulated car, and a wallbox whose car draws 10 A whatever it is told.
    # DLM must count the rogue's draw above its set-point as load it cannot control and cut
    # the obedient charger, instead of sharing a budget the rogue already overdraws.
    r = _run(tmp_path, _DLM + """
from firmware.chargers.base import Charger
class Rogue(Charger):
    kind = 'rogue'
    has_meter = True
    supports_cp_disconnect = True   # external phase control needs it of every charger
    async def run(self, clock):
        pass
    def exchange(self, now):
        self.vehicle_connected = True
        self.charging = extra[0] > 0
        pc = self.phase_currents_ma
        pc[0] = pc[1] = pc[2] = extra[0]
        self.pushed_ma = self.limit_ma
        self.seen(now)
app.charger_factories['rogue'] = lambda app_, c: Rogue(c['name'], 16000)
w('charge_manager/config', {'chargers': [{'name': 'sim', 'type': 'sim', 'max_current': 16000},
  {'name': 'rogue', 'type': 'rogue', 'max_current': 16000}]})
sim, rogue = app.chargers
real = sim.exchange
def both(now):
    real(now)
    rogue.exchange(now)
sim.exchange = both
run_m(60000)
before = [sim.limit_ma, rogue.limit_ma, grid_ma()]
extra[0] = extra[1] = extra[2] = 10000      # the rogue's car ignores every set-point from now
run_m(360000)            # past the 4-minute restart gate, should DLM stop the chargers
worst = run_m(120000)
print(json.dumps({'before': before, 'after': [sim.limit_ma, rogue.limit_ma, grid_ma()],
                  'worst': worst, 'target': app.charge_manager.dlm.target_ma}))
""")
    assert r["target"] == 17000
    assert r["before"][0] >= 6000 and max(r["before"][2]) <= 17000
    # House 2 A + the rogue's 10 A leave 5 A: too little for the obedient car's 6 A minimum.
    assert r["after"][0] == 0
    assert r["worst"] <= 17000


def test_chargers_pause_when_the_control_task_dies(tmp_path):
    # The real tasks under asyncio (time factor 50): the control task, the simulated charger's
    # task, the site. The control step then raises (any bug, any input nobody thought of): the
    # charger tasks run on and would keep feeding the wallbox (and a Heidelberg's watchdog) the
    # last set-point with nobody watching the fuse, until the hardware watchdog resets the board
    # (10 s + its 30 s timeout on the ESP32; never on the Unix port). They must pause instead.
    out = run_mp("""
import asyncio, json
from firmware.app import App
from firmware.board.unix import UnixBoard
from firmware.clock import Clock
from tools.simsite.wiring import make_installer
clock = Clock(50)
app = App(UnixBoard(%r), clock, subsystems=(make_installer(None),))
sim = app.chargers[0]
ev = app.sim_site.ev
def w(path, body):
    app.registry.write(path, json.dumps(body))
async def site():
    while True:
        await clock.sleep_ms(500)
        app.sim_tick(500, clock.ticks_ms())
def boom(now_ms, dt_ms):
    raise ValueError('a bug in the control step')
async def main():
    w('power_manager/charge_mode', 0)
    w('power_manager/config', {'excess_charging_enable': False, 'default_mode': 0})
    control = asyncio.create_task(app.control.run())
    asyncio.create_task(site())
    await clock.sleep_ms(60000)
    before = [sim.limit_ma, list(ev.phase_currents_ma)]
    app.control.step = boom
    t0 = clock.ticks_ms()
    paused = None
    for i in range(40):
        await clock.sleep_ms(500)
        if paused is None and sim.offered_ma() == 0:
            paused = clock.ticks_ms() - t0
    print(json.dumps({'before': before, 'paused': paused, 'offered': sim.offered_ma(),
                      'ev': list(ev.phase_currents_ma), 'dead': control.done()}))
asyncio.run(main())
""" % str(tmp_path), heap="2M", timeout=120)
    r = json.loads(out.splitlines()[-1])
    assert r["before"][0] == 16000 and min(r["before"][1]) > 14000
    assert r["dead"] is True
    assert r["paused"] is not None and r["paused"] <= 5000     # 3 s, a poll, a site step
    assert r["offered"] == 0 and r["ev"] == [0, 0, 0]


def test_absurd_grid_phase_current_stops_charging_without_killing_the_control_step(tmp_path):
    # The ESP32's floats are 32-bit: a garbled float32 phase current above 3.4e35 A times 1000
    # is inf there, and int(inf) raised in DLM's glue (the control task died). On the Unix
    # port's 64-bit floats 1e306 does the same. An absurd current must stop the chargers.
    r = _run(tmp_path, _DLM + """
run_m(60000)
before = sim.limit_ma
out = []
for v in (1e306, -1e306, 3.4e38):
    app.slots[5].update([v, 2.0, 2.0], clock.ticks_ms())
    run(500, False)
    out.append(sim.limit_ma)
print(json.dumps({'before': before, 'out': out}))
""")
    assert r["before"] >= 14000
    assert r["out"][0] == 0 and r["out"][2] == 0


def test_dlm_protects_the_phase_a_1p_car_really_charges_on(tmp_path):
    # Installers rotate the phases of wallboxes (L2-L3-L1) to balance several of them: the 1p
    # car then charges on grid L2, not L1. With a 12 A load on L2 and 17 A per phase allowed,
    # the car may have 5 A (too little: it must stop); DLM watched only L1 (2 A house: 15 A).
    r = _run(tmp_path, _DLM + """
w('power_manager/external_control', 1)
house[1] = 12000
def grid_ma():           # the charger's L1 terminal is wired to grid L2
    ev = app.sim_site.ev.phase_currents_ma
    return [house[0] + ev[2], house[1] + ev[0], house[2] + ev[1]]
worst = run_m(60000)
worst = run_m(300000)
print(json.dumps({'is3': app.pm.is_3phase, 'worst': worst, 'grid': grid_ma(),
                  'set': sim.limit_ma}))
""")
    assert r["is3"] is False
    assert r["set"] == 0
    assert r["worst"] <= 17000


def test_contactor_config_write_keeps_a_running_switch_and_a_latched_error(tmp_path):
    # Any contactor_config write built a new phase switcher: seconds into a 30 s CP-off time the
    # pilot came back at once (cars that need ~45 s to see the new phases stay 1p), and a
    # latched contactor error (a stuck contactor) was cleared without contactor_reset.
    r = _run(tmp_path, """
fast_external()
w('power_manager/external_control', 3)
run(60000)
w('power_manager/contactor_config', {'cp_off_time_s': 30})
run(20000)
del trace[:]
t0 = clock.ticks_ms()
w('power_manager/external_control', 1)
run(6000)
mid = [app.pm.switching_state, sim.cp_disconnect]
w('power_manager/contactor_config', {'min_switch_interval_s': 20})
run(250)
after = [app.pm.switching_state, sim.cp_disconnect]
run(40000)
switch = [(t - t0, s) for t, s in trace]
app.sim_contactor.stuck = True
w('power_manager/external_control', 3)
run(40000)
a = app.registry.read('power_manager/contactor_state')['error']
w('power_manager/contactor_config', {'cp_off_time_s': 11})
run(1000)
b = app.registry.read('power_manager/contactor_state')
print(json.dumps({'mid': mid, 'after': after, 'switch': switch, 'latched': [a, b['error']],
                  'alloc': app.pm.charge_manager_allocated_current,
                  'next': b['next_switch_allowed_in_ms']}))
""")
    assert r["mid"] == [5, True]
    assert r["after"] == [5, True]             # still waiting out the CP-off time
    assert 28000 <= r["switch"][-1][0] - r["switch"][2][0] <= 33000   # CP off ~30 s
    assert r["latched"] == [1, 1] and r["alloc"] == 0


_DEAD_CHARGER = """
from firmware.chargers.base import Charger
class Dead(Charger):
    kind = 'dead'
    supports_cp_disconnect = True
    async def run(self, clock):
        pass
app.charger_factories['dead'] = lambda app_, c: Dead(c['name'], 16000)
"""


def test_no_futile_switch_attempts_while_a_charger_is_unreachable(tmp_path):
    # A second wallbox is offline (its current cannot be confirmed at 0 A), and the phases are
    # to change ("always 1p" set while charging on 3p). The switch can never be done, and each
    # attempt held the charging car at 0 A for 15 s, again every min_switch_interval (10 s
    # here): the car stopped and restarted its charging every 25 s, 0 A for 60 % of the time.
    r = _run(tmp_path, _DEAD_CHARGER + """
fast_external()
w('power_manager/external_control', 3)
run(30000)
w('power_manager/config', {'phase_switching_mode': 2})      # always 3p
w('charge_manager/config', {'chargers': [{'name': 'sim', 'type': 'sim', 'max_current': 16000},
  {'name': 'garage', 'type': 'dead', 'max_current': 16000}]})
sim = app.chargers[0]
run(60000)
before = [app.pm.is_3phase, sim.limit_ma]
del trace[:]
w('power_manager/config', {'phase_switching_mode': 1})
zero = 0
for i in range(1200):
    run(250)
    if sim.limit_ma == 0:
        zero += 250
print(json.dumps({'before': before, 'attempts': [s for _, s in trace].count(1),
                  'zero_ms': zero, 'is3': app.pm.is_3phase, 'moves': len(moves)}))
""")
    assert r["before"] == [True, 16000]
    assert r["attempts"] <= 1 and r["zero_ms"] <= 16000
    assert r["is3"] is True          # the phases stay: the offline wallbox may still draw


def test_a_car_that_never_stops_is_not_paused_again_every_half_minute(tmp_path):
    # A car keeps drawing through the pause, so the switch to 1p is aborted (the phases stay).
    # It was tried again after every min_switch_interval (10 s here): 12 attempts in 5 min,
    # the car at 0 A 61 % of the time. Now the next attempt waits 5 minutes.
    r = _run(tmp_path, KEEPS_DRAWING + """
zero = 0
for i in range(2400):
    run(250)
    if sim.limit_ma == 0:
        zero += 250
cs = app.registry.read('power_manager/contactor_state')
print(json.dumps({'attempts': [s for _, s in trace].count(1), 'zero_ms': zero,
                  'moved': len(moves) - n_moves, 'res': cs['last_result']}))
""")
    assert r["moved"] == 0 and r["res"] == 2
    assert r["attempts"] == 2                 # at 0 and 5 min + 15 s, in 10 minutes
    assert r["zero_ms"] <= 32000
