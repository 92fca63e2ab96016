# Distribution of the available current over up to 16 chargers (DOMAIN 4), as pure logic.
#
# Rules: every charger gets 0 or at least its minimum; what is left after the minimums is
# shared evenly up to each charger's request; a charger is lowered at once but raised only when
# no other charger was lowered within settle_ms (cars need up to ~5 s to follow a lower offer,
# so raising another one at the same time could overload the supply for those seconds); when not all
# chargers fit, they take turns (rotation_ms). A charger's request is its maximum until it has
# been charging for a while, then the largest measured phase current + a margin (cars often draw
# less than offered; the unused rest goes to the others).
#
# The caller fills the per-charger input lists (index 0..n-1), calls step(dt_ms, budget_ma) and
# reads alloc_ma. Integer-only, no I/O, step() allocates nothing. The lists have `slots` entries
# (n <= slots <= MAX_CHARGERS): the charge manager makes a new ChargeAlloc with one slot per
# configured charger whenever the chargers change, so a site with one wallbox does not carry 14
# lists of 16.
from micropython import const

MAX_CHARGERS = const(16)
_MARGIN_MA = const(3000)          # DOMAIN 4: measured + 3 A (evcc: + 2 A)
_REQUEST_AFTER_MS = const(60000)  # DOMAIN 4: measured-based request after 60 s of charging
_SETTLE_MS = const(5000)          # DOMAIN 4: cars take up to ~5 s to follow a lower offer
_ROTATION_MS = const(900000)      # DOMAIN 4: rotate every 15 min when not all fit
_SAT_MS = const(1 << 28)          # timers saturate here (inside +-2**30)

# Rank classes for the order in which chargers get their minimum.
_R_WAITING = const(0)     # waiting for current, not yet due
_R_OVERDUE = const(1)     # has had current for a full rotation period
_R_DUE = const(2)         # waited a full rotation period: takes an overdue one's place
_R_RUNNING = const(3)     # has current, not yet a full rotation period


class ChargeAlloc:
    def __init__(self, margin_ma=_MARGIN_MA, settle_ms=_SETTLE_MS, rotation_ms=_ROTATION_MS,
                 request_after_ms=_REQUEST_AFTER_MS, slots=MAX_CHARGERS):
        self.margin_ma = margin_ma
        self.settle_ms = settle_ms
        self.rotation_ms = rotation_ms
        self.request_after_ms = request_after_ms
        self.n = 0
        z = [0] * slots
        # Inputs, set by the caller before step().
        self.active = [False] * slots      # reachable and a vehicle connected
        self.charging = [False] * slots
        self.measured_ma = list(z)                # largest phase current measured
        self.min_ma = list(z)
        self.max_ma = list(z)
        # Outputs.
        self.alloc_ma = list(z)
        self.request_ma = list(z)
        self.allocated_ma = 0
        self.fitting = 0          # chargers with current this step
        self.waiting = 0          # active chargers left at 0 because the budget is short
        # Internal.
        self._target = list(z)
        self._order = list(z)
        self._rank = list(z)
        self._charging_ms = list(z)
        self._run_ms = list(z)
        self._wait_ms = list(z)
        self._lowered_ms = list(z)   # per charger: settle time left after its last cut
        self.settling = 0      # chargers still settling after a cut (for the API)

    def _before(self, i, j):
        """True when charger i gets its minimum before charger j."""
        ri = self._rank[i]
        rj = self._rank[j]
        if ri != rj:
            return ri > rj
        if self.charging[i] != self.charging[j]:
            return self.charging[i]
        if ri == _R_DUE or ri == _R_WAITING:
            if self._wait_ms[i] != self._wait_ms[j]:
                return self._wait_ms[i] > self._wait_ms[j]
        elif self._run_ms[i] != self._run_ms[j]:
            return self._run_ms[i] < self._run_ms[j]
        if self.request_ma[i] != self.request_ma[j]:
            return self.request_ma[i] < self.request_ma[j]
        return i < j

    def step(self, dt_ms, budget_ma):
        n = self.n
        alloc = self.alloc_ma
        target = self._target
        req = self.request_ma
        rot = self.rotation_ms
        if budget_ma < 0:
            budget_ma = 0
        # Timers, requests and ranks.
        m = 0
        for i in range(n):
            if self.active[i] and self.charging[i]:
                self._charging_ms[i] = min(_SAT_MS, self._charging_ms[i] + dt_ms)
            else:
                self._charging_ms[i] = 0
            if self.active[i] and alloc[i] > 0:
                self._run_ms[i] = min(_SAT_MS, self._run_ms[i] + dt_ms)
                self._wait_ms[i] = 0
            elif self.active[i]:
                self._wait_ms[i] = min(_SAT_MS, self._wait_ms[i] + dt_ms)
                self._run_ms[i] = 0
            else:
                self._run_ms[i] = 0
                self._wait_ms[i] = 0
            lo = self.min_ma[i]
            hi = self.max_ma[i]
            r = hi
            if self._charging_ms[i] >= self.request_after_ms:
                r = self.measured_ma[i] + self.margin_ma
                if r > hi:
                    r = hi
            if r < lo:
                r = lo
            req[i] = r
            target[i] = 0
            if not self.active[i] or hi < lo or hi <= 0:
                continue
            if alloc[i] > 0:
                self._rank[i] = _R_RUNNING if self._run_ms[i] < rot else _R_OVERDUE
            else:
                self._rank[i] = _R_DUE if self._wait_ms[i] >= rot else _R_WAITING
            # Insertion sort into _order[0..m).
            k = m
            while k > 0 and self._before(i, self._order[k - 1]):
                self._order[k] = self._order[k - 1]
                k -= 1
            self._order[k] = i
            m += 1
        # Minimums in order; a charger that does not fit gets 0.
        left = budget_ma
        fitting = 0
        for k in range(m):
            i = self._order[k]
            if self.min_ma[i] <= left:
                target[i] = self.min_ma[i]
                left -= self.min_ma[i]
                fitting += 1
        self.fitting = fitting
        self.waiting = m - fitting
        # The rest evenly, up to each request (water filling; each pass fills at least one
        # charger or hands out everything, so at most MAX_CHARGERS + 1 passes).
        for _ in range(MAX_CHARGERS + 1):
            count = 0
            for k in range(m):
                i = self._order[k]
                if 0 < target[i] < req[i]:
                    count += 1
            if count == 0 or left < count:
                break
            share = left // count
            for k in range(m):
                i = self._order[k]
                t = target[i]
                if 0 < t < req[i]:
                    add = req[i] - t
                    if add > share:
                        add = share
                    target[i] = t + add
                    left -= add
        # Lower at once; raise a charger only when no *other* charger was lowered within
        # settle_ms (that car may still draw its old current). Raising the charger that was
        # itself just lowered cannot overload anything: it only undoes its own cut.
        lowering = 0
        for i in range(n):
            a = alloc[i]
            if not self.active[i]:
                self._lowered_ms[i] = 0      # unplugged / unreachable: draws nothing of ours
            if a > 0 and (target[i] < a or a < self.min_ma[i]):
                alloc[i] = target[i] if target[i] < a else 0
                if self.active[i]:
                    self._lowered_ms[i] = self.settle_ms
            elif self._lowered_ms[i] > 0:
                self._lowered_ms[i] = max(0, self._lowered_ms[i] - dt_ms)
            if self._lowered_ms[i] > 0:
                lowering += 1
        self.settling = lowering
        for i in range(n):
            if target[i] > alloc[i] and (
                    lowering == 0 or (lowering == 1 and self._lowered_ms[i] > 0)):
                alloc[i] = target[i]
        total = 0
        for i in range(n):
            total += alloc[i]
        for i in range(n, len(alloc)):
            alloc[i] = 0
        self.allocated_ma = total
        return total
