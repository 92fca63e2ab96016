"""Power manager: thresholds, config errors, charge modes, gain, voltage, low_level_state keys."""
from control_helpers import run_lines

SPEC_KEYS = [
    "power_at_meter", "power_at_meter_filtered", "power_available", "power_available_filtered",
    "overall_min_power", "threshold_3to1", "threshold_1to3", "charge_manager_available_current",
    "charge_manager_allocated_current", "max_current_limited", "uptime_past_hysteresis",
    "is_3phase", "wants_3phase", "wants_3phase_last", "is_on_last", "wants_on_last",
    "phase_state_change_blocked", "phase_state_change_delay", "on_state_change_blocked",
    "on_state_change_delay", "charging_blocked", "switching_state"]
BOOL_KEYS = {"uptime_past_hysteresis", "is_3phase", "wants_3phase", "wants_3phase_last",
             "is_on_last", "wants_on_last", "phase_state_change_blocked",
             "on_state_change_blocked"}


def test_low_level_state_has_every_spec_key_with_its_type():
    [[d]] = run_lines("pm = mk()\nSite(pm, pv_w=3000).run(5000)\nout(pm.low_level_state())")
    assert sorted(d) == sorted(SPEC_KEYS)
    for k, v in d.items():
        if k in BOOL_KEYS:
            assert v is True or v is False, k
        else:
            assert type(v) is int, k


def test_thresholds_and_overall_min_power():
    res = run_lines(r"""
for lim, cfg in (({}, {}),                                   # 16 A: dead band
                 ({"max_current_ma": 32000}, {}),            # 32 A: no dead band
                 ({}, {"phase_switching_mode": 2}),          # always 3p
                 ({"min_current_1p_ma": 8000}, {"phase_switching_mode": 1})):
    pm = mk(lim=lim, cfg=cfg)
    pm.step(100)
    out(pm.threshold_3to1, pm.threshold_1to3, pm.overall_min_power)
# auto without a contactor, wired 3p: only 3p is possible
pm = mk(lim={"contactor_installed": False}, is3=True)
pm.step(100)
out(pm.overall_min_power, pm.config_error_flags)
""")
    assert res == [[3795, 4025, 1380], [4140, 7360, 1380], [3795, 4025, 4140],
                   [3795, 4025, 1840], [4140, 1]]


def test_config_error_flags():
    res = run_lines(r"""
for cfg, lim in (({}, {}),
                 ({}, {"contactor_installed": False}),
                 ({"phase_switching_mode": 1}, {"contactor_installed": False}),
                 ({"phase_switching_mode": 4}, {"contactor_installed": False}),
                 ({"phase_switching_mode": 3, "excess_charging_enable": False}, {"contactor_installed": False}),
                 ({}, {"max_current_ma": 0}),
                 ({}, {"charger_count": 0}),
                 ({"meter_slot_grid_power": 255}, {}),
                 ({"meter_slot_grid_power": 255, "excess_charging_enable": False}, {})):
    pm = mk(cfg=cfg, lim=lim)
    out(pm.config_error_flags)
""")
    assert [r[0] for r in res] == [0, 1, 0, 1, 1, 2, 4, 8, 0]


def test_fast_mode_offers_maximum_on_three_phases():
    res = run_lines(r"""
for pmode in (0, 1, 2, 4):
    pm = mk(mode=0, cfg={"phase_switching_mode": pmode})
    site = Site(pm, pv_w=0)
    site.run(3000)
    out(pmode, pm.wants_on, pm.wants_3phase, pm.power_available, pm.charge_manager_available_current)
""")
    assert res == [[0, True, True, 11040, 16000], [1, True, False, 3680, 16000],
                   [2, True, True, 11040, 16000], [4, True, True, 11040, 16000]]


def test_excess_disabled_turns_pv_modes_into_fast():
    [[on, pa]] = run_lines(r"""
pm = mk(mode=2, cfg={"excess_charging_enable": False, "phase_switching_mode": 2})
Site(pm, pv_w=0).run(2000)
out(pm.wants_on, pm.power_available)
""")
    assert on is True and pa == 11040


def test_off_mode_gives_nothing_and_acts_at_once():
    res = run_lines(r"""
pm = mk(mode=0)
site = Site(pm)
site.run(2000)
out(pm.wants_on, pm.charge_manager_available_current)
pm.set_charge_mode(1)
site.run(500)
out(pm.wants_on, pm.charge_manager_available_current, pm.power_available)
""")
    assert res == [[True, 16000], [False, 0, 0]]


def test_adaptive_gain_in_eighths():
    # power_available = charging + gain x (target - grid); gain 8/8 while nothing charges.
    res = run_lines(r"""
for charging, grid in ((0, -2000), (0, 700), (3000, -800), (3000, 800), (3000, -1200),
                       (3000, 1400), (3000, -2000), (3000, 4000), (50, -999)):
    pm = mk(mode=2, cfg={"target_power_from_grid": 0})
    pm.is_on_last = charging > 0     # charging: the PM is on (gain 8/8 while off)
    pm._mode_free = False            # steady state (right after a mode change: 8/8 too)
    pm.charging_w = charging
    pm.grid_w = grid
    pm.grid_fresh = True
    pm.step(100)
    out(pm.power_available - charging)
pm2 = mk(mode=2, cfg={"target_power_from_grid": 500})
pm2.grid_w = -1000
pm2.charging_w = 0
pm2.grid_fresh = True
pm2.step(100)
out(pm2.power_available)
""")
    assert [r[0] for r in res] == [2000, -700, 400, -400, 900, -1050, 1750, -3500, 999, 1500]


def test_pv_mode_result_and_measured_voltage():
    res = run_lines(r"""
pm = mk(mode=2, cfg={"phase_switching_mode": 1})
pm.grid_w = -2300
pm.charging_w = 0
pm.grid_fresh = True
pm.step(100)
out(pm.wants_on, pm.charge_manager_available_current)
pm.voltage_v = 240
pm.grid_w = -2300
pm.grid_fresh = True
pm.step(100)
out(pm.charge_manager_available_current)
pm.voltage_v = 400      # implausible: nominal 230 V
pm.step(100)
out(pm.charge_manager_available_current)
""")
    # 2300 W at 230 V = 10 A; at 240 V 9.583 A (no saw-tooth from a fixed 230 V)
    assert res == [[True, 10000], [9583], [10000]]


def test_min_pv_floors_at_guaranteed_power_raised_to_minimum():
    res = run_lines(r"""
for g in (0, 1380, 2300):
    pm = mk(mode=3, cfg={"guaranteed_power": g, "phase_switching_mode": 1})
    site = Site(pm, pv_w=0)      # no sun at all
    site.run(5000)
    out(pm.wants_on, pm.power_available, pm.charge_manager_available_current)
""")
    assert res == [[True, 1380, 6000], [True, 1380, 6000], [True, 2300, 10000]]


def test_hysteresis_time_is_clamped_to_documented_range():
    res = run_lines(r"""
for h in (1, 10, 300, 3600, 100000):
    pm = mk(hyst=h)
    out(pm.hysteresis_ms)
""")
    assert [r[0] for r in res] == [10000, 10000, 300000, 3600000, 3600000]


def test_dlm_limit_lowers_max_current_and_blocks_below_minimum():
    res = run_lines(r"""
pm = mk(mode=0, cfg={"phase_switching_mode": 2})
site = Site(pm)
site.run(1000)
out(pm.max_current_limited, pm.charge_manager_available_current, pm.charging_blocked)
pm.dlm_limit_ma = 10000
site.run(500)
out(pm.max_current_limited, pm.charge_manager_available_current, pm.charging_blocked)
pm.dlm_limit_ma = 4000
site.run(500)
out(pm.max_current_limited, pm.charge_manager_available_current, pm.charging_blocked, pm.wants_on)
""")
    assert res == [[16000, 16000, 0], [10000, 10000, 0], [4000, 0, 32, False]]


def test_external_blocked_flags_stop_at_once():
    res = run_lines(r"""
pm = mk(mode=0, hyst=10)
site = Site(pm)
site.run(20000)          # past the first hysteresis after boot (no free switch left)
pm.blocked_flags = 8
site.run(500)
out(pm.charge_manager_available_current, pm.wants_on, pm.charging_blocked)
pm.blocked_flags = 0
site.run(500)
out(pm.charge_manager_available_current, pm.wants_on, pm.charging_blocked, pm.on_state_change_delay)
site.run(9000)
out(pm.wants_on)
site.run(500)
out(pm.wants_on, pm.charge_manager_available_current)
""")
    # back on one hysteresis after the block began (reference: both blocks restart at the stop)
    assert res == [[0, False, 8], [0, False, 0, 9500], [False], [True, 16000]]


def test_current_is_zero_while_switching_phases():
    res = run_lines(r"""
pm = mk(mode=0)
site = Site(pm)
site.run(2000)
pm.switching = True
pm.switching_state = 2
site.run(500)
out(pm.charge_manager_available_current, pm.low_level_state()["switching_state"])
pm.switching = False
pm.switching_state = 0
site.run(500)
out(pm.charge_manager_available_current)
""")
    assert res == [[0, 2], [16000]]


def test_reconfigure_at_runtime_keeps_filter_history_and_shortens_timers():
    res = run_lines(r"""
pm = mk(mode=2, hyst=600, cfg={"phase_switching_mode": 1, "cloud_filter_mode": 3})
site = Site(pm, pv_w=3000)
site.run(700000)
site.pv_w = 0
# the 480 s average of the surplus falls below the minimum after ~210 s
site.until(lambda p: not p.wants_on_last, 300000)
out(pm.on_state_change_delay > 590000, pm.wants_on)
c = dict(BASE_CFG)
c.update({"phase_switching_mode": 1, "cloud_filter_mode": 1})
pm.configure(c, {"hysteresis_time": 30}, BASE_LIM)
out(pm.on_state_change_delay, pm._filter._window, pm._filter._filled)
site.run(30000)
out(pm.wants_on)
""")
    assert res == [[True, True], [30000, 120, 480], [False]]


def test_configure_sanitises_values():
    res = run_lines(r"""
pm = PowerManager()
pm.configure({"meter_slot_grid_power": 7, "meter_slot_battery_power": -1, "battery_mode": 5,
              "cloud_filter_mode": 9, "phase_switching_mode": 8},
             {}, {"min_current_1p_ma": 0, "max_current_ma": 10**9})
out(pm.meter_slot_grid_power, pm.meter_slot_battery_power, pm.battery_mode,
    pm.cloud_filter_mode, pm.phase_switching_mode, pm.max_current_ma, pm.hysteresis_ms)
pm.set_charge_mode(1)
pm.step(100)
out(pm.wants_on, pm.charge_manager_available_current, pm.config_error_flags)
""")
    assert res == [[255, 255, 0, 3, 4, 1000000, 240000], [False, 0, 5]]


def test_thresholds_follow_the_measured_voltage():
    # At 240 V the car's 6 A draw 1440 W: deciding on/off against the nominal 1380 W would hold
    # it on while it imports up to 60 W (and a 1p->3p switch at the nominal 4025 W would land
    # on a 3p minimum of 4320 W). The powers follow a plausible measured voltage, back to the
    # nominal numbers (the spec's example) without one. A jitter within +-2 V of the voltage
    # they were computed at leaves them (232 V after 230 V), a move of 3 V does not (233 V).
    res = run_lines(r"""
pm = mk(mode=2, hyst=10)
for v in (0, 240, 220, 400, 0, 232, 228, 233):
    pm.voltage_v = v
    pm.grid_w = 0
    pm.grid_fresh = True
    pm.step(100)
    s = pm.low_level_state()
    out(s["overall_min_power"], s["threshold_3to1"], s["threshold_1to3"])
# A 240 V site with 1400 W surplus (above 1380, below 1440 W): no start; with 1450 W it starts.
for surplus in (1400, 1450):
    pm = mk(mode=2, hyst=10, cfg={"phase_switching_mode": 1})
    site = Site(pm, pv_w=surplus, house_w=0)
    pm.voltage_v = 240
    on = site.until(lambda p: p.wants_on, 60000)
    out(surplus, on >= 0)
# Charging at 6 A on a 240 V site while the surplus falls to 1400 W: it stops after the block.
pm = mk(mode=2, hyst=10, cfg={"phase_switching_mode": 1})
pm.voltage_v = 240
site = Site(pm, pv_w=2400, house_w=0)
site.run(30000)
site.pv_w = 1400
off = site.until(lambda p: not p.wants_on, 120000)
out(pm.wants_on, 0 < off <= 30000)
""")
    assert res == [[1380, 3795, 4025], [1440, 3960, 4200], [1320, 3630, 3850],
                   [1380, 3795, 4025], [1380, 3795, 4025],
                   [1380, 3795, 4025], [1380, 3795, 4025], [1398, 3844, 4077],
                   [1400, False], [1450, True], [False, True]]
