# Dynamic load management (DOMAIN 2): how much current the chargers may draw on each phase so
# that the grid connection's fuse stays safe, as pure logic.
#
# target per phase = min(1.4 x current_limit - largest_consumer, current_limit)
#                    x (100 - safety_margin_pct) / 100
# (a breaker tolerates ~1.4 x for a short time; the largest consumer may switch on any moment).
#
# Design choice: the 10 s pre-processing (running mean and max) is applied to the *house* part
# of each phase current (grid current minus what our chargers draw), not to the total. The
# chargers' own steps are known and commanded by us; passing them through a 10 s mean only adds
# lag, and a controller fed with a lagging total keeps cutting while the cars are still
# following the last cut (wind-up down to 0). Room for the chargers = target - house.
#   grid raw < target + 10 %:  house = 10 s mean               (calm)
#   grid raw > target + 20 %:  house = 10 s max                (overload: act now, urgent)
#   in between:                interpolated
# The reference uses (max + mean) / 2 in overload; right after a house load step the mean still
# holds the old load, so that cut only halves the excess and the phase stays above its target
# for ~12 s (measured in make sim: 2 A -> 12 A house step, 19 A target). The max is the new load
# at once, so the chargers get the whole cut at the next fresh sample.
# The limit follows the room: down by 15/16 of the excess at once, up by half the gap, at most
# target/2 per fresh sample, and up only as far as the 10 s max of the house current allows.
# A limit under the chargers' minimum stops them; they restart only when the room's minimum
# over the last 4 minutes allows the minimum (no start/stop cycling).
# Stale phase currents (no fresh sample for stale_ms) -> every limit 0 -> charging stops.
#
# Integer-only (mA, ms), no I/O; step() allocates nothing; every intermediate within +-2**30
# (phase currents are clamped to +-500 A, the fuse to 1000 A).
from micropython import const

_WIN_BUCKETS = const(10)      # 10 s window of 1 s buckets
_BUCKET_MS = const(1000)
_GATE_BUCKETS = const(8)      # 4 min minimum filter of 30 s buckets
_GATE_BUCKET_MS = const(30000)
_MAX_SAMPLES = const(64)      # per bucket, keeps the sums small
_CLAMP_MA = const(500000)
_LIMIT_CLAMP_MA = const(1000000)
_UNKNOWN = const(1 << 29)     # gate bucket without data since boot: does not block
_BLOCKED = const(-1)          # gate bucket after stale data: blocks re-activation
STALE_MS = const(65000)       # DOMAIN 2: the reference stops after 65 s without phase currents


def target_ma(current_limit_ma, largest_consumer_ma, safety_margin_pct):
    lim = min(max(0, current_limit_ma), _LIMIT_CLAMP_MA)
    big = min(max(0, largest_consumer_ma), _LIMIT_CLAMP_MA)
    t = min((14 * lim) // 10 - big, lim)
    if t < 0:
        t = 0
    return t * (100 - min(max(0, safety_margin_pct), 100)) // 100


class Dlm:
    def __init__(self, stale_ms=STALE_MS):
        self.stale_ms = stale_ms
        self.target_ma = 0
        self.limit_ma = [0, 0, 0]     # output: what the chargers may draw per phase
        self.room_ma = [0, 0, 0]      # target - pre-processed house current
        self.stopped = [True, True, True]   # until the first good sample
        self.stale = True
        self.urgent = False           # some phase above target + 20 %: reallocate now
        self._sum = [0] * (3 * _WIN_BUCKETS)
        self._cnt = [0] * (3 * _WIN_BUCKETS)
        self._max = [-_CLAMP_MA] * (3 * _WIN_BUCKETS)
        self._bucket = 0
        self._bucket_ms = 0
        self._gate = [_UNKNOWN] * (3 * _GATE_BUCKETS)
        self._gate_i = 0
        self._gate_ms = 0
        self._have_limit = False
        self._was_good = False

    def configure(self, current_limit_ma, largest_consumer_ma, safety_margin_pct):
        self.target_ma = target_ma(current_limit_ma, largest_consumer_ma, safety_margin_pct)

    def limit(self):
        """The chargers' limit: the smallest of the three, for 1p too. The caller credits each
        charger's draw on its heaviest phase to every phase (chargers/dlm_step.py), so the
        limit of phase p bounds exactly the chargers really on p, whatever the wiring: a 1p
        wallbox is often wired to L2 or L3 to balance several, and its own L1 reading does not
        say which grid phase it loads."""
        return min(self.limit_ma[0], self.limit_ma[1], self.limit_ma[2])

    def _stop_all(self):
        for p in range(3):
            self.limit_ma[p] = 0
            self.stopped[p] = True
        if self._was_good:
            # Data went away after it was good: a restart needs 4 min of good room again.
            # (At boot, before the first sample, the first good sample may start at once.)
            for k in range(3 * _GATE_BUCKETS):
                self._gate[k] = _BLOCKED

    def step(self, dt_ms, grid_ma, age_ms, fresh, charger_ma, min_ma):
        """grid_ma: signed phase currents at the grid meter (+ import); age_ms: age of that
        sample; fresh: a new sample since the last step; charger_ma: what the controlled
        chargers draw per phase now; min_ma: the chargers' minimum current (below it they stop).
        """
        t = self.target_ma
        # Advance the window clocks (empty buckets start as they pass).
        self._bucket_ms += dt_ms
        while self._bucket_ms >= _BUCKET_MS:
            self._bucket_ms -= _BUCKET_MS
            self._bucket = (self._bucket + 1) % _WIN_BUCKETS
            for p in range(3):
                k = p * _WIN_BUCKETS + self._bucket
                self._sum[k] = 0
                self._cnt[k] = 0
                self._max[k] = -_CLAMP_MA
        self._gate_ms += dt_ms
        while self._gate_ms >= _GATE_BUCKET_MS:
            self._gate_ms -= _GATE_BUCKET_MS
            self._gate_i = (self._gate_i + 1) % _GATE_BUCKETS
            for p in range(3):
                self._gate[p * _GATE_BUCKETS + self._gate_i] = _UNKNOWN
        if age_ms > self.stale_ms or age_ms < 0:
            if not self.stale:
                self.stale = True
            self._stop_all()
            self._have_limit = False
            self.urgent = False
            return
        self.stale = False
        if not fresh and self._have_limit:
            return
        self._have_limit = True
        self._was_good = True
        urgent = False
        t11 = t + t // 10
        t12 = t + t // 5
        for p in range(3):
            raw = grid_ma[p]
            if raw > _CLAMP_MA:
                raw = _CLAMP_MA
            elif raw < -_CLAMP_MA:
                raw = -_CLAMP_MA
            house = raw - charger_ma[p]
            if house > _CLAMP_MA:
                house = _CLAMP_MA
            elif house < -_CLAMP_MA:
                house = -_CLAMP_MA
            k = p * _WIN_BUCKETS + self._bucket
            if self._cnt[k] < _MAX_SAMPLES:
                self._sum[k] += house
                self._cnt[k] += 1
            if house > self._max[k]:
                self._max[k] = house
            total = 0
            cnt = 0
            mx = -_CLAMP_MA
            for b in range(_WIN_BUCKETS):
                kk = p * _WIN_BUCKETS + b
                total += self._sum[kk]
                cnt += self._cnt[kk]
                if self._max[kk] > mx:
                    mx = self._max[kk]
            mean = total // cnt
            if raw <= t11:
                h = mean
            else:
                peak = mx
                if raw >= t12 or t12 <= t11:
                    h = peak
                    urgent = True
                else:
                    f = (raw - t11) * 256 // (t12 - t11)
                    h = mean + (peak - mean) * f // 256
            room = t - h
            self.room_ma[p] = room
            g = p * _GATE_BUCKETS + self._gate_i
            if room < self._gate[g]:
                self._gate[g] = room
            lim = self.limit_ma[p]
            if self.stopped[p]:
                gate = _UNKNOWN
                for b in range(_GATE_BUCKETS):
                    v = self._gate[p * _GATE_BUCKETS + b]
                    if v < gate:
                        gate = v
                if gate >= min_ma and room >= min_ma:
                    self.stopped[p] = False
                    lim = min(gate, room)
                else:
                    lim = 0
            elif room < lim:
                lim += (15 * (room - lim)) // 16   # down: 15/16 of the excess at once
            elif t - mx > lim:
                # up: half the gap, at most target/2, and only as far as the house's 10 s max
                # leaves room. Raising on the mean alone re-overloads the phase after a house
                # step (the mean still holds the old load for 10 s) and oscillates.
                lim += min((t - mx - lim) // 2, t // 2)
            if lim < 0:
                lim = 0
            if not self.stopped[p] and lim < min_ma:
                self.stopped[p] = True
                lim = 0
            self.limit_ma[p] = lim
        self.urgent = urgent
