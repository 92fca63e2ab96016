# Seeded second-to-second fluctuations the shared profiles lack: of the house load (W) and of
# the grid voltage (V).
#
# The shared profiles are 1-minute means held for 60 s, and the house model changes its base
# load every 5 minutes: neither has the restless few tens of watts a real grid meter shows from
# one 1-s sample to the next (compressors, power supplies, an inverter's MPP tracking), nor the
# volt or two the mains voltage wanders by. A controller that regulates the grid to 0 W on
# average imports during half of such noise, so `make bench BENCH_ARGS='--load-noise-w 40'`
# (and `--voltage-noise-v`) measure how much (docs/benchmark.md, "Meter noise").
#
# Model: a first-order autoregressive process (correlation time 5 s) with a new value every
# second, driven by a sum of three uniform integers (a bell-shaped step with no wild outliers;
# over a day the fluctuation stays within about +-4 sigma).
# Integer arithmetic throughout, so CPython and MicroPython produce the same sequence.
from tools.simsite.rng import Rng

# x' = (A * x + B * e) >> 10 with A/1024 = exp(-1 s / 5 s) and B/1024 = sqrt(1 - (A/1024)^2):
# the stationary deviation of x equals that of e.
_A = 838
_B = 588
# e = the sum of three uniforms in [-2048, 2047]: deviation sqrt(3 * 4096^2 / 12) = 2048.
_UNIT = 2048


class Noise:
    def __init__(self, sigma, seed=1):
        """sigma: the deviation, in whole units of what it is added to (W, V)."""
        self.sigma = int(sigma)
        self._rng = Rng(seed * 104729 + 3)
        self._x = 0
        self._sec = -1
        self.value = 0

    def _e(self):
        r = self._rng
        return r.randint(-2048, 2047) + r.randint(-2048, 2047) + r.randint(-2048, 2047)

    def at(self, t_ms):
        """The fluctuation at time t_ms (t_ms must not decrease from call to call): one new
        value per whole second."""
        sec = t_ms // 1000
        while self._sec < sec:
            self._x = (_A * self._x + _B * self._e()) >> 10
            self._sec += 1
        self.value = self._x * self.sigma // _UNIT
        return self.value
