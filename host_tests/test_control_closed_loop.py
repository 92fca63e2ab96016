"""Closed loop: the power manager against the simulated car (tools/simsite/ev.py: ~3 s reaction
delay, 4 A/s ramp, draws 95-100 % of its offer). Guards the controller's stability and
accuracy: no limit cycle, little export or import at steady excess, no start/stop cycling."""
from control_helpers import run_lines

_LOOP = r"""
from tools.simsite.ev import EV
from tools.simsite.noise import Noise

def loop(profile, mode=2, cfg=None, settle_ms=120000, draw_min=95, hyst=300, noise_w=0):
    # noise_w: the house load restless by this deviation from one 1 s sample to the next.
    c = {"phase_switching_mode": 1, "cloud_filter_mode": 2}
    c.update(cfg or {})
    pm = mk(mode=mode, hyst=hyst, cfg=c)
    ev = EV(draw_min_pct=draw_min, seed=5)
    noise = Noise(noise_w, 3)
    t = 0
    imp = exp = car = 0
    lo = 10**9
    hi = -1
    starts = 0
    on = False
    for dur, pv in profile:
        end = t + dur
        while t < end:
            grid = 300 + noise.at(t) - pv + ev.power_w
            pm.grid_w = grid
            pm.grid_fresh = t % 500 == 0          # 2 Hz meter, 4 Hz loop
            pm.grid_age_ms = 100
            pm.charging_w = ev.power_w
            pm.step(250)
            pm.is_3phase = pm.wants_3phase
            ev.step(250, pm.charge_manager_available_current, 3 if pm.is_3phase else 1)
            if pm.wants_on and not on:
                starts += 1
            on = pm.wants_on
            if t >= settle_ms:
                if grid > 0:
                    imp += grid * 250
                else:
                    exp -= grid * 250
                car += ev.power_w * 250
                cur = pm.charge_manager_available_current
                lo = cur if cur < lo else lo
                hi = cur if cur > hi else hi
            t += 250
    return imp // 3600000, exp // 3600000, car // 3600000, lo, hi, starts
"""


def test_steady_excess_is_tracked_without_limit_cycle():
    [[imp, exp, car, lo, hi, starts]] = run_lines(_LOOP + r"""
out(*loop([(720000, 3000)]))      # 12 min at 2700 W excess, judged after 2 min
""")
    # 10 min at 2700 W = 450 Wh possible
    assert car >= 400, car
    assert imp <= 5 and exp <= 30, (imp, exp)
    assert hi - lo <= 1500, (lo, hi)   # the offer settles: no oscillation
    assert starts == 1


def test_pv_steps_follow_without_cycling():
    [[imp, exp, car, lo, hi, starts]] = run_lines(_LOOP + r"""
prof = [(120000, 3000), (60000, 1900), (120000, 3300), (30000, 2500), (120000, 3800)] * 3
out(*loop(prof))
""")
    assert starts == 1                  # never stopped: every step stays above the minimum
    assert imp <= 40 and exp <= 60, (imp, exp)
    assert car >= 900, car


def test_min_pv_without_sun_charges_at_guaranteed_power_only():
    [[imp, exp, car, lo, hi, starts]] = run_lines(_LOOP + r"""
out(*loop([(600000, 0)], mode=3, cfg={"guaranteed_power": 2300}))
""")
    assert (lo, hi) == (10000, 10000)
    assert exp == 0 and starts == 1


def test_noise_margin_keeps_a_restless_house_from_importing():
    # 40 min at 2700 W excess, the car drawing exactly its offer, the house restless by 60 W
    # from second to second. Holding the grid at 0 W on average imports in every upward wiggle
    # (~0.4 x 60 W = 24 W, 16 Wh in 40 min); the noise margin aims the current below the
    # target by twice the mean sample-to-sample change. "without" is the same loop with the
    # restlessness estimate switched off (margin 0).
    rows = run_lines(_LOOP + r"""
prof = [(2520000, 3000)]
quiet = loop(prof, draw_min=100)
noisy = loop(prof, draw_min=100, noise_w=60)
steps = loop([(120000, 3000), (60000, 1900), (120000, 3300), (30000, 2500), (120000, 3800)] * 3,
             draw_min=100)
PowerManager._restless = lambda self, err_w: None
out(*quiet)
out(*noisy)
out(*steps)
out(*loop(prof, draw_min=100))
out(*loop(prof, draw_min=100, noise_w=60))
out(*loop([(120000, 3000), (60000, 1900), (120000, 3300), (30000, 2500), (120000, 3800)] * 3,
          draw_min=100))
""")
    (imp_q, exp_q, car_q, _, _, _), (imp_n, exp_n, car_n, _, _, st), (imp_s, exp_s, car_s, _, _, _) = rows[:3]
    (imp_q0, exp_q0, car_q0, _, _, _), (imp_n0, exp_n0, car_n0, _, _, _), (imp_s0, exp_s0, car_s0, _, _, _) = rows[3:]
    assert imp_n0 >= 10, rows                        # the zero-mean regulator imports
    assert imp_n * 2 <= imp_n0, rows                 # the margin takes most of it away
    assert exp_n - exp_n0 <= 25 and car_n >= car_n0 * 97 // 100, rows   # for a little export
    assert st == 1
    # A quiet meter gives no margin; PV steps (1-minute data) are not taken for noise.
    assert imp_q <= 1 and exp_q <= exp_q0 + 3 and car_q >= car_q0 - 3, rows
    assert exp_s <= exp_s0 + 10 and car_s >= car_s0 - 10, rows
