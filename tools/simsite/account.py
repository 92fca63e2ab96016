# Energy accounting of a simulated day: where the EV's energy came from, what a perfect
# controller could have had, starts, phase switches and charging runs. Runs under MicroPython
# (our controller) and CPython (the baselines) on the same Site, so every number is comparable.
#
# Per step (the EV is the marginal consumer: without it the site would have exported):
#   ev_from_grid    = min(ev, max(0, grid))
#   ev_from_battery = min(ev - ev_from_grid, max(0, -battery))        (battery discharging)
#   ev_from_surplus = ev - ev_from_grid - ev_from_battery
#   oracle          = surplus (pv - house) if it fits the EV's power range, else the largest
#                     power of the range below it; 0 below the minimum. With 1p and 3p allowed
#                     the range is [1p min, 1p max] u [3p min, 3p max] (dead band in between).
#   peer_pv         = min(pv, ev)  (the peer's metric, ignores the house load)
#   ev_grid_at_min  = the part of ev_from_grid drawn while the EV runs at (up to 2 % above) its
#                     minimum power on the phases it has: what a controller imports while it holds
#                     the car through a dip instead of pausing, as opposed to the import while it
#                     tracks the surplus above the minimum (late reaction to a falling surplus).
# Energies are integer W*ms sums; a start is the EV going from 0 W to drawing, except when it
# resumes after a phase switch (the contactor moved while it was stopped): that is a switch.


class Account:
    def __init__(self, voltage_v, min_ma, max_ma, allow_1p=True, allow_3p=True):
        v = voltage_v
        self.min_1p_w = v * min_ma // 1000 if allow_1p else 0
        self.max_1p_w = v * max_ma // 1000 if allow_1p else 0
        self.min_3p_w = 3 * v * min_ma // 1000 if allow_3p else 0
        self.max_3p_w = 3 * v * max_ma // 1000 if allow_3p else 0
        self.allow_1p = allow_1p
        self.allow_3p = allow_3p
        self.pv = 0
        self.house = 0
        self.ev = 0
        self.ev_grid = 0
        self.ev_grid_at_min = 0
        self.ev_battery = 0
        self.ev_surplus = 0
        self.oracle = 0
        self.peer_pv = 0
        self.import_ = 0
        self.export = 0
        self.starts = 0
        self.oracle_starts = 0
        self._oracle_on = False
        self.phase_switches = 0
        self.runs = 0
        self.shortest_run_ms = 0
        self.longest_run_ms = 0
        self.charging_ms = 0
        self.time_ms = 0
        self._charging = False
        self._run_ms = 0
        self._phases = 0
        self._switched_in_gap = False

    def oracle_w(self, surplus_w):
        best = 0
        if self.allow_1p and surplus_w >= self.min_1p_w:
            best = surplus_w if surplus_w < self.max_1p_w else self.max_1p_w
        if self.allow_3p and surplus_w >= self.min_3p_w:
            p = surplus_w if surplus_w < self.max_3p_w else self.max_3p_w
            if p > best:
                best = p
        return best

    def step(self, dt_ms, site, phases):
        """Account dt_ms of the site's state after its step; `phases` = contactor (0/1/3)."""
        ev = site.ev.power_w
        grid = site.grid_w
        self.time_ms += dt_ms
        self.pv += site.pv_w * dt_ms
        self.house += site.house_w * dt_ms
        if grid > 0:
            self.import_ += grid * dt_ms
        else:
            self.export -= grid * dt_ms
        ow = self.oracle_w(site.surplus_w)
        self.oracle += ow * dt_ms
        if ow and not self._oracle_on:
            self.oracle_starts += 1   # how often even the perfect controller has to start
        self._oracle_on = ow > 0
        if phases and phases != self._phases:
            if self._phases:
                self.phase_switches += 1
                if not self._charging:
                    self._switched_in_gap = True
            self._phases = phases
        if ev > 0:
            self.ev += ev * dt_ms
            g = grid if grid > 0 else 0
            if g > ev:
                g = ev
            b = -site.battery_w
            if b < 0:
                b = 0
            if b > ev - g:
                b = ev - g
            self.ev_grid += g * dt_ms
            at_min_w = self.min_3p_w if phases == 3 else self.min_1p_w
            if ev <= at_min_w * 102 // 100:
                self.ev_grid_at_min += g * dt_ms
            self.ev_battery += b * dt_ms
            self.ev_surplus += (ev - g - b) * dt_ms
            self.peer_pv += (ev if ev < site.pv_w else site.pv_w) * dt_ms
            self.charging_ms += dt_ms
            if not self._charging:
                self._charging = True
                if self._switched_in_gap and self.runs:
                    self._switched_in_gap = False   # resumed after a phase switch: same run
                else:
                    if self.runs:
                        self._end_run()             # the previous run really ended
                    self.starts += 1
                    self.runs += 1
                    self._run_ms = 0
            self._run_ms += dt_ms
        elif self._charging:
            self._charging = False
            self._switched_in_gap = False

    def _end_run(self):
        r = self._run_ms
        if self.shortest_run_ms == 0 or r < self.shortest_run_ms:
            self.shortest_run_ms = r
        if r > self.longest_run_ms:
            self.longest_run_ms = r

    def finish(self):
        """Close the last run at the end of the day; call once."""
        self._charging = False
        if self.runs:
            self._end_run()

    def result(self):
        k = 3600000000  # W*ms per kWh
        ev = self.ev
        return {
            "pv_kwh": self.pv / k,
            "house_kwh": self.house / k,
            "oracle_kwh": self.oracle / k,
            "ev_kwh": ev / k,
            "ev_from_surplus_kwh": self.ev_surplus / k,
            "ev_from_grid_kwh": self.ev_grid / k,
            "ev_from_battery_kwh": self.ev_battery / k,
            "ev_from_grid_at_min_kwh": self.ev_grid_at_min / k,
            "capture_ratio": self.ev_surplus / self.oracle if self.oracle else 0.0,
            "grid_share": self.ev_grid / ev if ev else 0.0,
            "import_kwh": self.import_ / k,
            "export_kwh": self.export / k,
            "peer_pv_kwh": self.peer_pv / k,
            "peer_grid_kwh": (ev - self.peer_pv) / k,
            "starts": self.starts,
            "oracle_starts": self.oracle_starts,
            "phase_switches": self.phase_switches,
            "shortest_run_s": self.shortest_run_ms // 1000,
            "longest_run_s": self.longest_run_ms // 1000,
            "charging_s": self.charging_ms // 1000,
        }
