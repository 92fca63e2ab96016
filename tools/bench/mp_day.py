# One benchmark day of OUR controller: the firmware's own firmware/control/power_manager.py on
# the MicroPython Unix port, against tools/simsite. Started by tools/bench_pv.py:
#
#   micropython -X heapsize=2M tools/bench/mp_day.py < job.json
#
# (The job comes on stdin: this Unix port aborts with "FATAL: uncaught NLR" on an argument
# longer than 255 bytes, the qstr length limit.)
# Prints one JSON object: {"result": {...Account.result()}, "series": [...], "perf": {...}}.
# perf: median control-step time (µs, from a histogram) and bytes allocated by the control
# step in steady state (gc.mem_alloc() around every 64th step after the first simulated hour).
import sys
import json
import gc
import time

job = json.loads(sys.stdin.read())
sys.path[:0] = [job["root"], job["root"] + "/lib"]

from array import array                                   # noqa: E402
from firmware.control.power_manager import PowerManager   # noqa: E402
from tools.bench.setting import build_site, pm_config     # noqa: E402
from firmware.control.phase_switch import PhaseSwitch   # noqa: E402
from firmware.control.charge_alloc import ChargeAlloc   # noqa: E402
from firmware.control.charging_input import control_charging_w  # noqa: E402
from tools.simsite.dayrun import run_day                  # noqa: E402

_HIST_US = 4000
_WARMUP_MS = 3600000


class FirmwareCtl:
    """Glue between the day runner's measurements and the PowerManager inputs, like
    firmware/control_task.py does on the board, then the charge manager's allocation for the
    one charger."""

    def __init__(self, pm_cfg, debug_cfg, limits, mode, base_pct=110, budget_pct=0):
        self.alloc = ChargeAlloc()
        self.alloc.n = 1
        self.min_ma = limits["min_current_1p_ma"]
        self.max_ma = limits["max_current_ma"]
        self.base_pct = base_pct
        self.budget_pct = budget_pct
        self.run_wms = 0
        self.hold_import_wms = 0
        pm = self.pm = PowerManager()
        pm.configure(pm_cfg, debug_cfg, limits)
        pm.set_charge_mode(mode)
        self.offered_ma = 0
        self.wants_3phase = False
        self.hist = array("I", [0] * (_HIST_US + 1))
        self.steps = 0
        self.timed = 0
        self.alloc_bytes = 0
        self.alloc_checked = 0
        self.alloc_steps = 0

    def step(self, dt_ms, m):
        pm = self.pm
        pm.grid_w = m.grid_w
        pm.grid_fresh = m.grid_fresh
        pm.grid_age_ms = m.grid_age_ms
        pm.battery_w = m.battery_w
        pm.battery_age_ms = m.battery_age_ms
        # The board's rule (firmware/control_task.py): the allocated power within base_pct % of
        # the measured one (job "base_pct", default 110 as on the board; 100 = measured only).
        ch = control_charging_w(m.charging_w, pm.charge_manager_allocated_current,
                                3 if m.is_3phase else 1, m.voltage_v, self.base_pct)
        pm.charging_w = ch
        pm.blocked_flags = 0
        if self.budget_pct:
            # Experiment (job "import_budget_pct"): while the power manager holds the minimum
            # current waiting out its switch-off hysteresis, count the import; once it exceeds
            # budget_pct % of this run's energy (at least 10 Wh), stop now (blocked_flags 128
            # for one step: a hard block, no hysteresis).
            if m.charging_w > 0:
                self.run_wms += m.charging_w * dt_ms
            elif not pm.is_on_last:
                self.run_wms = 0
            if pm.is_on_last and not pm.wants_on_last and m.grid_w > 0:
                imp = m.grid_w if m.grid_w < m.charging_w else m.charging_w
                self.hold_import_wms += imp * dt_ms
                lim = self.run_wms * self.budget_pct // 100
                if lim < 36000000:
                    lim = 36000000
                if self.hold_import_wms > lim:
                    pm.blocked_flags = 128
                    self.hold_import_wms = 0
            elif pm.wants_on_last:
                self.hold_import_wms = 0
        pm.voltage_v = m.voltage_v
        pm.is_3phase = m.is_3phase
        pm.switching = m.switching
        pm.switching_state = m.switching_state
        if m.now_ms > _WARMUP_MS:
            if self.steps & 63 == 0:
                # gc.mem_alloc() walks the heap (~100 µs): bracket every 64th step only.
                a = gc.mem_alloc()
                pm.step(dt_ms)
                b = gc.mem_alloc()
                self.alloc_checked += 1
                if b != a:
                    self.alloc_steps += 1
                    if b > a:
                        self.alloc_bytes += b - a
            else:
                t0 = time.ticks_us()
                pm.step(dt_ms)
                us = time.ticks_diff(time.ticks_us(), t0)
                self.hist[us if us < _HIST_US else _HIST_US] += 1
                self.timed += 1
        else:
            pm.step(dt_ms)
        self.steps += 1
        # The charge manager's allocation (firmware/control/charge_alloc.py, as
        # firmware/chargers/manager.py drives it) for the one charger.
        a = self.alloc
        budget = pm.charge_manager_available_current
        if budget > self.max_ma:
            budget = self.max_ma
        if m.switching:
            budget = 0
        a.active[0] = True
        a.charging[0] = m.charging_w > 0
        a.measured_ma[0] = m.ev_max_phase_ma
        a.min_ma[0] = self.min_ma
        a.max_ma[0] = self.max_ma
        a.step(dt_ms, budget)
        pm.charge_manager_allocated_current = a.allocated_ma
        self.offered_ma = a.alloc_ma[0]
        self.wants_3phase = pm.wants_3phase

    def quantile_us(self, pct):
        k = self.timed * pct // 100
        n = 0
        for us in range(_HIST_US + 1):
            n += self.hist[us]
            if n > k:
                return us
        return -1


def main():
    site, opts = build_site(job)
    pm_cfg, debug_cfg, limits = pm_config(job)
    ctl = FirmwareCtl(pm_cfg, debug_cfg, limits, job.get("charge_mode", 2), job.get("base_pct", 110),
                      job.get("import_budget_pct", 0))
    t0 = time.ticks_ms()
    acct, series = run_day(site, ctl, allow_switch=opts["allow_switch"],
                           start_phases=opts["start_phases"], max_ma=opts["max_ma"],
                           series_ms=job.get("series_ms", 60000),
                           phase_switch=PhaseSwitch() if opts["allow_switch"] else None)
    wall_ms = time.ticks_diff(time.ticks_ms(), t0)
    res = acct.result()
    perf = {"step_us_median": ctl.quantile_us(50), "step_us_p99": ctl.quantile_us(99),
            "step_us_max": max(us for us in range(_HIST_US + 1) if ctl.hist[us]) if ctl.timed else -1,
            "timed_steps": ctl.timed,
            "alloc_bytes_per_step": ctl.alloc_bytes / ctl.alloc_checked if ctl.alloc_checked else 0,
            "alloc_checked_steps": ctl.alloc_checked, "alloc_steps": ctl.alloc_steps, "steps": ctl.steps, "wall_s": wall_ms / 1000}
    print(json.dumps({"result": res, "series": series, "perf": perf}))


main()
