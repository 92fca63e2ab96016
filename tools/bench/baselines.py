"""Peer baseline controllers for the benchmark (host CPython).

Written from the documented behaviour in ../shared/DOMAIN.md section 1 (not from the peers'
code), with the day runner's controller interface (tools/simsite/dayrun.py):
step(dt_ms, m), offered_ma, wants_3phase.
"""

_NOMINAL_V = 230


class Evcc:
    """evcc with its defaults: a control cycle every 30 s on the latest meter reading; enable
    after 1 min of enough surplus for the minimum current, disable after 3 min at the minimum
    current with import; phases up after 1 min of enough surplus for 3p minimum, down after
    3 min without; whole-amp steps; 60 s lock after a phase switch; uses the nominal 230 V."""

    name = "evcc"
    INTERVAL_MS = 30000
    ENABLE_MS = 60000
    DISABLE_MS = 180000
    PHASE_UP_MS = 60000
    PHASE_DOWN_MS = 180000
    PHASE_LOCK_MS = 60000

    def __init__(self, min_ma, max_ma, allow_switch):
        self.min_ma = min_ma
        self.max_ma = max_ma
        self.allow_switch = allow_switch
        self.offered_ma = 0
        self.wants_3phase = False
        self.enabled = False
        self._cycle_ms = self.INTERVAL_MS  # first cycle at once
        self._enable_since = None
        self._disable_since = None
        self._up_since = None
        self._down_since = None
        self._lock_until = -1
        self._now = 0

    def step(self, dt_ms, m):
        self._now = m.now_ms
        self._cycle_ms += dt_ms
        if m.switching:
            self._lock_until = self._now + self.PHASE_LOCK_MS
            return
        if self._cycle_ms < self.INTERVAL_MS:
            return
        self._cycle_ms = 0
        now = self._now
        phases = 3 if m.is_3phase else 1
        # Surplus incl. what the EV takes. evcc's site power is grid + battery (its default has
        # no battery priority SoC): battery charging counts as available, discharging as import.
        available_w = m.charging_w - m.grid_w + m.battery_w
        min_1p_w = _NOMINAL_V * self.min_ma // 1000
        min_3p_w = 3 * min_1p_w

        # --- phases ---
        if self.allow_switch and now >= self._lock_until:
            if phases == 1:
                self._down_since = None
                if available_w >= min_3p_w:
                    if self._up_since is None:
                        self._up_since = now
                    if now - self._up_since >= self.PHASE_UP_MS:
                        self._switch(True)
                        return
                else:
                    self._up_since = None
            else:
                self._up_since = None
                if available_w < min_3p_w:
                    if self._down_since is None:
                        self._down_since = now
                    # While disabled nothing is charging: scale down at once.
                    if not self.enabled or now - self._down_since >= self.PHASE_DOWN_MS:
                        self._switch(False)
                        return
                else:
                    self._down_since = None

        target_ma = available_w * 1000 // (_NOMINAL_V * phases)
        target_ma = target_ma // 1000 * 1000          # whole amps
        if self.enabled:
            self._enable_since = None
            if target_ma < self.min_ma:
                if self._disable_since is None:
                    self._disable_since = now
                if now - self._disable_since >= self.DISABLE_MS:
                    self.enabled = False
                    self._disable_since = None
                    self.offered_ma = 0
                    return
                target_ma = self.min_ma
            else:
                self._disable_since = None
            self.offered_ma = min(target_ma, self.max_ma)
        else:
            self._disable_since = None
            if target_ma >= self.min_ma:
                if self._enable_since is None:
                    self._enable_since = now
                if now - self._enable_since >= self.ENABLE_MS:
                    self.enabled = True
                    self._enable_since = None
                    self.offered_ma = min(target_ma, self.max_ma)
            else:
                self._enable_since = None
            if not self.enabled:
                self.offered_ma = 0

    def _switch(self, to3):
        self.wants_3phase = to3
        self._up_since = None
        self._down_since = None
        self._lock_until = self._now + self.PHASE_LOCK_MS


class RefGen1:
    """The reference vendor's first-generation power manager with its defaults: 250 ms loop on
    fresh meter samples, 240 s moving average (medium cloud filter) next to a 1 s fast value,
    adaptive P gain (1 while idle, else 0.5 / 0.75 / 0.875 by |error| < 1000 / < 1500 / above),
    on/off and 1p/3p decisions that act only after 5 min unchanged (one free decision in the
    first 5 min after boot, phase switches while off are free), minimum current while a
    switch-off waits, charger allocation every 5 s, 230 V nominal."""

    name = "ref_gen1"
    WINDOW_S = 240
    HYST_MS = 300000
    ALLOC_MS = 5000

    def __init__(self, min_ma, max_ma, allow_switch):
        self.min_ma = min_ma
        self.max_ma = max_ma
        self.allow_switch = allow_switch
        self.offered_ma = 0
        self.wants_3phase = False
        self._ring = [0] * self.WINDOW_S
        self._n = 0
        self._head = 0
        self._sum = 0
        self._bucket_w = 0
        self._bucket_n = 0
        self._bucket_ms = 0
        self._fast_w = 0
        self._have = False
        self._on = False
        self._want_on = False
        self._on_delay = 0
        self._want3 = False
        self._ph_delay = 0
        self._uptime = 0
        self._boot_free = True
        self._alloc_ms = self.ALLOC_MS
        self._pa = 0
        self._was3 = False
        max_1p = _NOMINAL_V * max_ma // 1000
        min_3p = 3 * _NOMINAL_V * min_ma // 1000
        if min_3p > max_1p:
            gap = min_3p - max_1p
            self.t31, self.t13 = max_1p + gap // 4, max_1p + gap * 3 // 4
        else:
            self.t31, self.t13 = min_3p, max_1p

    def _filter(self, dt_ms, m, grid_w):
        self._bucket_ms += dt_ms
        if m.grid_fresh:
            self._bucket_w += grid_w
            self._bucket_n += 1
        if self._bucket_ms >= 1000 and self._bucket_n:
            v = self._bucket_w // self._bucket_n
            self._fast_w = v
            self._have = True
            if self._n == self.WINDOW_S:
                self._sum -= self._ring[self._head]
            else:
                self._n += 1
            self._ring[self._head] = v
            self._sum += v
            self._head = (self._head + 1) % self.WINDOW_S
            self._bucket_ms = 0
            self._bucket_w = 0
            self._bucket_n = 0

    @staticmethod
    def _gain(err, charging_w):
        if charging_w < 100:
            return err
        a = abs(err)
        if a < 1000:
            return err * 4 // 8
        if a < 1500:
            return err * 6 // 8
        return err * 7 // 8

    def step(self, dt_ms, m):
        if self._was3 and not m.is_3phase:
            self._ring = [0] * self.WINDOW_S
            self._n = self._sum = self._head = 0
        self._was3 = m.is_3phase
        self._uptime += dt_ms
        if self._uptime >= self.HYST_MS:
            self._boot_free = False
        self._on_delay = max(0, self._on_delay - dt_ms)
        self._ph_delay = max(0, self._ph_delay - dt_ms)
        grid_w = m.grid_w
        if m.battery_w < 0:
            grid_w -= m.battery_w            # discharge counts against the excess
        elif m.battery_age_ms >= 0:
            grid_w -= m.battery_w            # battery_mode 0: its charge power is available
        self._filter(dt_ms, m, grid_w)
        if not self._have:
            return
        filt = self._sum // self._n if self._n else self._fast_w
        ch = m.charging_w
        pa = ch + self._gain(-self._fast_w, ch)
        paf = ch + self._gain(-filt, ch)
        is3 = m.is_3phase
        omin = (3 if (is3 and not self.allow_switch) else 1) * _NOMINAL_V * self.min_ma // 1000
        # phase decision
        if self.allow_switch and not m.switching:
            d3 = paf >= self.t31 if self._want3 else paf > self.t13
            if d3 != getattr(self, "_d3_last", None):
                self._d3_last = d3
                self._ph_delay = self.HYST_MS
            if d3 != self._want3:
                if not self._on or self._ph_delay == 0:
                    self._want3 = d3
                elif self._boot_free:
                    self._boot_free = False
                    self._want3 = d3
        self.wants_3phase = self._want3
        # on/off decision
        want = (paf >= omin or pa >= omin) if self._on else (paf >= omin and pa >= omin)
        if want != self._want_on:
            self._want_on = want
            self._on_delay = self.HYST_MS
        if want != self._on:
            if self._on_delay == 0:
                self._on = want
            elif self._boot_free:
                self._boot_free = False
                self._on = want
        self._alloc_ms += dt_ms
        if self._alloc_ms < self.ALLOC_MS:
            return
        self._alloc_ms = 0
        if not self._on or m.switching:
            self.offered_ma = 0
            return
        ph = 3 if is3 else 1
        p = pa if self._want_on else 0
        cur = max(0, p) * 1000 // (_NOMINAL_V * ph)
        self.offered_ma = max(self.min_ma, min(self.max_ma, cur))
