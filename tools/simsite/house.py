# Seeded house load: a base load that wanders every 5 minutes plus random appliance events
# (kettle, oven, washing machine, ...), each on one phase or all three.
#
# The whole day is generated once at construction into a piecewise-constant timeline (sorted
# change points, per-phase watts in int arrays), so w_at() is a cursor look-up, not a sum over
# events: the benchmark calls it ~4 times a simulated second.
from array import array

from tools.simsite.rng import Rng

# name, watts, minutes, phase (0..2, or 3 = spread over all three), times a day,
# then optional (watts, minutes) of a second stage (e.g. a washing machine heats, then spins).
_APPLIANCES = (
    ("kettle", 2000, 3, 0, 4, 0, 0),
    ("microwave", 1100, 4, 1, 3, 0, 0),
    ("toaster", 900, 3, 0, 1, 0, 0),
    ("hair dryer", 1800, 8, 2, 1, 0, 0),
    ("oven", 2400, 45, 3, 1, 0, 0),
    ("hob", 1800, 20, 1, 2, 0, 0),
    ("washing machine", 2100, 18, 2, 1, 250, 70),
    ("dishwasher", 2000, 25, 1, 1, 150, 60),
    ("vacuum", 1200, 25, 0, 1, 0, 0),
    ("pump", 600, 12, 3, 3, 0, 0),
)
_FRIDGE_W = 110           # compressor on 15 min of every 45 (phase L1)
_NOISE_PERIOD_S = 300


class House:
    def __init__(self, seed=1, base_w=250, duration_s=86400, scale_pct=100):
        """`duration_s`: the timeline length; look-ups wrap around it (a day repeats)."""
        self.seed = seed
        self.duration_ms = duration_s * 1000
        rng = Rng(seed * 7919 + 17)
        # Changes as (t_s, dw1, dw2, dw3); summed into a timeline below.
        changes = []

        def add(t0, t1, w, ph):
            if t1 > duration_s:
                t1 = duration_s
            if t0 >= t1:
                return
            w = w * scale_pct // 100
            if ph == 3:
                d = (w // 3, w // 3, w - 2 * (w // 3))
            else:
                d = [0, 0, 0]
                d[ph] = w
            changes.append((t0, d[0], d[1], d[2]))
            changes.append((t1, -d[0], -d[1], -d[2]))

        # Base load wanders +-25 % every 5 minutes (standby, lights, IT), spread over the phases.
        for t in range(0, duration_s, _NOISE_PERIOD_S):
            w = base_w + rng.randint(-base_w // 4, base_w // 4)
            add(t, t + _NOISE_PERIOD_S, w, 3)
        # Fridge with a seeded phase offset.
        t = rng.randint(0, 45 * 60)
        while t < duration_s:
            add(t, t + 15 * 60, _FRIDGE_W, 0)
            t += 45 * 60
        for name, w, minutes, ph, per_day, w2, minutes2 in _APPLIANCES:
            n = per_day * duration_s // 86400 if duration_s >= 86400 else (per_day * duration_s + 43200) // 86400
            for _ in range(n):
                t0 = rng.randint(0, max(0, duration_s - 60))
                d = minutes * 60 * rng.randint(80, 120) // 100
                add(t0, t0 + d, w, ph)
                if w2:
                    add(t0 + d, t0 + d + minutes2 * 60, w2, ph)
        changes.sort(key=lambda c: c[0])
        self._t_ms = array("l")
        self._w = (array("l"), array("l"), array("l"))
        self._total = array("l")
        w1 = w2_ = w3 = 0
        i = 0
        n = len(changes)
        while i < n:
            t = changes[i][0]
            while i < n and changes[i][0] == t:
                c = changes[i]
                w1 += c[1]
                w2_ += c[2]
                w3 += c[3]
                i += 1
            self._t_ms.append(t * 1000)
            self._w[0].append(w1)
            self._w[1].append(w2_)
            self._w[2].append(w3)
            self._total.append(w1 + w2_ + w3)
        self._i = 0
        self._phase_w = [0, 0, 0]

    def _index(self, t_ms):
        t_ms %= self.duration_ms
        ts = self._t_ms
        i = self._i
        if t_ms < ts[i]:
            i = 0
        n = len(ts)
        while i + 1 < n and ts[i + 1] <= t_ms:
            i += 1
        self._i = i
        return i

    def w_at(self, t_ms):
        """Total house load in W (>= 0)."""
        return self._total[self._index(t_ms)]

    def phase_w_at(self, t_ms):
        """Per-phase load in W as a list of 3 (the same list object every call)."""
        i = self._index(t_ms)
        p = self._phase_w
        p[0] = self._w[0][i]
        p[1] = self._w[1][i]
        p[2] = self._w[2][i]
        return p
