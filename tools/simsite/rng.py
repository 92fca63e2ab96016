# A tiny deterministic PRNG. MicroPython's and CPython's `random` give different sequences for
# the same seed; the benchmark runs the same site under both, so the site brings its own.
# Park-Miller "minimal standard" (multiplier 48271, modulus 2**31 - 1): period 2**31 - 2.
_M = 2147483647
_A = 48271


class Rng:
    def __init__(self, seed=1):
        s = int(seed) % _M
        self._s = s if s else 1

    def next(self):
        self._s = (self._s * _A) % _M
        return self._s

    def randint(self, lo, hi):
        """Integer in [lo, hi], both included."""
        return lo + self.next() % (hi - lo + 1)
