"""Power manager: battery rules, deadzone, stale or missing data -> safe state, fresh-only action."""
from control_helpers import run_lines

_ONE = r"""
def once(grid, bat, cfg=None, mode=2, bat_age=100, grid_age=100):
    c = {"meter_slot_battery_power": 1, "phase_switching_mode": 1}
    c.update(cfg or {})
    pm = mk(mode=mode, cfg=c)
    pm.grid_w = grid
    pm.battery_w = bat
    pm.grid_age_ms = grid_age
    pm.battery_age_ms = bat_age
    pm.charging_w = 0
    pm.grid_fresh = True
    pm.step(100)
    return pm
"""


def test_battery_modes_inversion_and_discharge():
    res = run_lines(_ONE + r"""
# battery_mode 0 (prefer chargers): battery charge power is available to the cars
pm = once(0, 2000, {"battery_mode": 0}); out(pm.power_available, pm.power_at_meter_filtered)
# battery_mode 1 (prefer storage): it is not
pm = once(0, 2000, {"battery_mode": 1}); out(pm.power_available)
pm = once(-2500, 2000, {"battery_mode": 1}); out(pm.power_available)
# discharge always counts against the excess, in both modes
pm = once(-3000, -1000, {"battery_mode": 0}); out(pm.power_available)
pm = once(-3000, -1000, {"battery_mode": 1}); out(pm.power_available)
pm = once(0, -1500, {"battery_mode": 0}); out(pm.power_available, pm.wants_on)
# inverted: a storage reporting -2000 while charging
pm = once(0, -2000, {"battery_mode": 0, "battery_inverted": True}); out(pm.power_available)
pm = once(0, 2000, {"battery_mode": 0, "battery_inverted": True}); out(pm.power_available)
""")
    assert res == [
        [2000, -2000],
        [0],
        [2400],         # -2500 shrunk by the 100 W deadzone
        [1900],         # -2900 + 1000 discharge
        [1900],
        [-1500, False],
        [2000],
        [-2000],
    ]


def test_battery_deadzone():
    res = run_lines(_ONE + r"""
for grid in (80, -80, 100, 500, -500):
    pm = once(grid, 0, {"battery_deadzone": 100})
    out(grid, pm.power_available)
# without a battery slot the deadzone does not apply
pm = once(80, 0, {"meter_slot_battery_power": 255, "battery_deadzone": 100})
out("nobat", pm.power_available)
""")
    assert res == [[80, 0], [-80, 0], [100, 0], [500, -400], [-500, 400], ["nobat", -80]]


def test_stale_grid_suspends_pv_at_once():
    res = run_lines(r"""
pm = mk(mode=2, hyst=60, cfg={"phase_switching_mode": 1})
site = Site(pm, pv_w=3000)
site.run(120000)
out("on", pm.wants_on, pm.charge_manager_available_current > 0, pm.charging_blocked)
pm.grid_age_ms = 125000
pm.grid_fresh = False
pm.step(500)
out("125s", pm.wants_on, pm.charging_blocked)
pm.grid_age_ms = 125001
pm.step(500)
out("stale", pm.wants_on, pm.charge_manager_available_current, pm.charging_blocked,
    pm.power_available)
site.pv_w = 1800    # 120 W above the minimum: a plain hysteresis, no early switch-on
site.run(500)       # fresh data again: on only after the hysteresis, from new numbers only
out("back", pm.wants_on, pm.wants_on_last, pm.charging_blocked, pm._filter._filled <= 1)
t = site.until(lambda p: p.wants_on, 70000)
# the block started when the stale data stopped charging (one step before "back")
out("on again", 59000 <= t <= 65000)
""")
    assert res == [["on", True, True, 0], ["125s", True, 0], ["stale", False, 0, 1, 0],
                   ["back", False, True, 0, True], ["on again", True]]


def test_missing_grid_data_and_missing_meter():
    res = run_lines(r"""
pm = mk(mode=2)
pm.grid_age_ms = -1          # never had a sample
pm.grid_w = -5000
pm.grid_fresh = True
pm.step(500)
out(pm.wants_on, pm.charging_blocked, pm.power_available)
pm = mk(mode=2, cfg={"meter_slot_grid_power": 255})
Site(pm, pv_w=5000).run(5000)
out(pm.wants_on, pm.charging_blocked, pm.config_error_flags)
""")
    assert res == [[False, 1, 0], [False, 5, 8]]


def test_stale_battery_suspends_pv():
    res = run_lines(r"""
pm = mk(mode=2, cfg={"meter_slot_battery_power": 1, "phase_switching_mode": 1})
site = Site(pm, pv_w=4000)
site.run(5000)
out(pm.wants_on, pm.charging_blocked)
def run_stale(ms):
    t = 0
    while t < ms:
        pm.battery_age_ms = 200000
        site.run(500)
        t += 500
run_stale(1000)
out(pm.wants_on, pm.charging_blocked, pm.charge_manager_available_current)
""")
    assert res == [[True, 0], [False, 2, 0]]


def test_stale_data_in_min_pv_and_fast():
    res = run_lines(r"""
def stale_run(pm, ms):
    t = 0
    while t < ms:
        pm.grid_age_ms = 300000
        pm.grid_fresh = False
        pm.step(500)
        t += 500
# Min+PV: the PV part is suspended, the guaranteed power (no meter numbers needed) stays
pm = mk(mode=3, cfg={"phase_switching_mode": 1, "guaranteed_power": 2300})
Site(pm, pv_w=5000).run(5000)
out(pm.charge_manager_available_current > 10000)
stale_run(pm, 2000)
out(pm.wants_on, pm.charge_manager_available_current, pm.charging_blocked)
# Fast ignores the grid meter (the fuse is DLM's job): unaffected
pm = mk(mode=0, cfg={"phase_switching_mode": 2})
stale_run(pm, 2000)
out(pm.wants_on, pm.charge_manager_available_current, pm.charging_blocked)
""")
    assert res == [[True], [True, 10000, 1], [True, 16000, 0]]


def test_acts_on_fresh_samples_only():
    res = run_lines(r"""
pm = mk(mode=2, cfg={"phase_switching_mode": 1})
pm.grid_w = -3000
pm.charging_w = 0
pm.grid_fresh = True
pm.step(250)
a = pm.power_available
pm.charging_w = 2000      # the charger's power moved, the meter has no new sample yet
pm.grid_fresh = False
pm.step(250)
out(a, pm.power_available)
pm.grid_w = -1000
pm.grid_fresh = True
pm.step(250)
out(pm.power_available != a)
""")
    assert res == [[3000, 3000], [True]]


def test_no_fresh_sample_yet_counts_as_missing():
    res = run_lines(r"""
pm = mk(mode=2)
pm.grid_w = -5000
pm.grid_age_ms = 100
pm.grid_fresh = False        # the slot claims a recent age, but no sample reached the filter
pm.step(500)
out(pm.wants_on, pm.charging_blocked, pm.power_available)
pm.grid_fresh = True
pm.step(500)
out(pm.wants_on, pm.charging_blocked, pm.power_available)
""")
    assert res == [[False, 1, 0], [True, 0, 5000]]
