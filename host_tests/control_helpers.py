"""Shared MicroPython prelude for the power manager tests (host_tests/test_control_*.py).

`PRE` is prepended to each snippet: it builds PowerManagers and drives them with a tiny site
model (PV, house, one car that follows its current one step later), time passed as dt_ms."""
import json

from mp import run_mp

PRE = r"""
import json
from firmware.control.power_manager import PowerManager

BASE_CFG = {"phase_switching_mode": 0, "excess_charging_enable": True, "default_mode": 0,
            "meter_slot_grid_power": 0, "target_power_from_grid": 0, "guaranteed_power": 1380,
            "cloud_filter_mode": 0, "meter_slot_battery_power": 255, "battery_mode": 0,
            "battery_inverted": False, "battery_deadzone": 100}
BASE_LIM = {"max_current_ma": 16000, "min_current_1p_ma": 6000, "min_current_3p_ma": 6000,
            "contactor_installed": True, "charger_count": 1}

def mk(mode=2, hyst=300, cfg=None, lim=None, is3=False):
    c = dict(BASE_CFG)
    c.update(cfg or {})
    l = dict(BASE_LIM)
    l.update(lim or {})
    pm = PowerManager()
    pm.configure(c, {"hysteresis_time": hyst}, l)
    pm.is_3phase = is3
    pm.grid_age_ms = 100
    pm.battery_age_ms = 100
    pm.set_charge_mode(mode)
    return pm

class Site:
    # grid = house - pv + car; the car draws what it was offered one step before (on the
    # phases the contactor has); the contactor follows wants_3phase at once unless frozen.
    def __init__(self, pm, pv_w=0, house_w=300, follow=True):
        self.pm = pm
        self.pv_w = pv_w
        self.house_w = house_w
        self.car_w = 0
        self.follow = follow

    def run(self, ms, dt=500):
        pm = self.pm
        t = 0
        while t < ms:
            pm.grid_w = self.house_w - self.pv_w + self.car_w
            pm.grid_fresh = True
            pm.grid_age_ms = 100
            pm.charging_w = self.car_w
            pm.step(dt)
            if self.follow:
                pm.is_3phase = pm.wants_3phase
            ph = 3 if pm.is_3phase else 1
            self.car_w = pm.charge_manager_available_current * 230 * ph // 1000
            t += dt
        return pm

    def until(self, cond, limit_ms, dt=500):
        # Run dt steps until cond(pm) holds; return the ms it took (or -1 past limit_ms).
        t = 0
        while t < limit_ms:
            self.run(dt, dt)
            t += dt
            if cond(self.pm):
                return t
        return -1

def st(pm):
    d = pm.low_level_state()
    d["wants_on"] = pm.wants_on
    return d

def out(*a):
    print(json.dumps(a))
"""


def run_lines(code, heap="100wK"):
    """Run PRE + code; every `out(...)` line becomes one parsed JSON list."""
    text = run_mp(PRE + code, heap=heap)
    return [json.loads(line) for line in text.splitlines() if line.startswith("[")]
