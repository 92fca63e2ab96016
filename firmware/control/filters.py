# Cloud filter of the power manager (DOMAIN 1): a moving average of the grid power over
# 0 / 120 / 240 / 480 s (cloud_filter_mode 0..3) plus a fast value (~1 s average).
#
# Integer-only, time passed in as dt_ms, allocation-free after construction.
# Samples are averaged into 1 s buckets; the buckets go into a ring of 480 entries (one per
# second of the strongest window), so the memory is fixed (1.9 KB) whatever the meter's sample
# rate, and a window sum is kept incrementally (O(1) per bucket). The ring is allocated when a
# window is first set (a config change, which may allocate): with the filter off (the default)
# nothing reads it, and its 1.9 KB stay free (heap diet, docs/board.md).
#
# The fast value is a true sliding 1 s average of the latest samples, each weighted by the time
# it covers (since the previous sample), kept in a small ring of 16 samples.
#
# Bounds: samples are clamped to +-SAMPLE_LIMIT_W, so a window sum is at most
# 480 x 1e6 = 4.8e8 < 2**30, a bucket sum at most 257 x 1e6, a fast-value sum at most
# 256/256 s x 1e6 = 2.56e8.
from micropython import const
from array import array

RING_S = const(480)             # longest window (strong filter), one bucket per second
SAMPLE_LIMIT_W = const(1000000)  # 1 MW: far above any home connection
_BUCKET_MS = const(1000)
_MAX_BUCKET_N = const(256)      # fold a bucket's sum before it could grow past 2**28
_FAST_N = const(16)             # samples remembered for the fast value (>= 1 s at 16 Hz)
_FAST_SPAN = const(256)         # 1 s in the fast value's weight unit (1/256 s)


def window_s(cloud_filter_mode):
    """Window length in seconds of a cloud_filter_mode (0 off, 1 weak, 2 medium, 3 strong)."""
    if cloud_filter_mode == 1:
        return 120
    if cloud_filter_mode == 2:
        return 240
    if cloud_filter_mode == 3:
        return 480
    return 0


class CloudFilter:
    """Feed update(dt_ms, sample_w, has_sample) every control step; read fast_w (1 s average,
    blended with the running bucket so a fresh sample is seen at once) and filtered_w (average of
    the window, or fast_w when the filter is off or has no completed bucket yet)."""

    def __init__(self):
        self._ring = None      # RING_S buckets once a window was set (see set_window)
        self._head = 0         # index the next bucket is written to
        self._filled = 0       # buckets pushed since the last reset (capped at RING_S)
        self._window = 0       # seconds (= buckets) averaged
        self._sum = 0          # sum of the last min(_filled, _window) buckets
        self._acc_w = 0        # running bucket: sum and count of its samples
        self._acc_n = 0
        self._elapsed_ms = 0   # time into the running bucket
        self._last_w = 0       # mean of the last completed bucket
        self._fw = array("i", bytes(4 * _FAST_N))  # fast value: samples ...
        self._fc = array("i", bytes(4 * _FAST_N))  # ... and the time each covers (1/256 s)
        self._fhead = 0
        self._fcount = 0
        self._since_ms = 0     # time since the previous sample (capped at 1 s)
        self.has_data = False  # a sample arrived since construction (or the last full reset)
        self.fast_w = 0
        self.filtered_w = 0

    def set_window(self, seconds):
        """Change the window (config change only). Recomputes the sum from the ring, so the
        history collected so far is kept. Buckets are collected only while a window is set:
        switching the filter on (the first time: allocating the ring) starts a new history."""
        if seconds < 0:
            seconds = 0
        elif seconds > RING_S:
            seconds = RING_S
        if seconds and not self._window:
            if self._ring is None:
                self._ring = array("i", bytes(4 * RING_S))
            self._head = 0
            self._filled = 0
        self._window = seconds
        n = self._filled if self._filled < seconds else seconds
        s = 0
        i = self._head
        for _ in range(n):
            i -= 1
            if i < 0:
                i = RING_S - 1
            s += self._ring[i]
        self._sum = s
        self._output()

    def reset(self, everything=False):
        """Forget the window history (after a 3p->1p switch): the average is rebuilt from new
        samples; until a bucket completes filtered_w follows fast_w. everything=True (data was
        stale) also forgets the fast value: the next sample starts afresh."""
        self._filled = 0
        self._sum = 0
        if everything:
            self.has_data = False
            self._acc_w = 0
            self._acc_n = 0
            self._elapsed_ms = 0
            self._fcount = 0
        self._output()

    def update(self, dt_ms, sample_w, has_sample):
        """Advance time by dt_ms, then add sample_w if has_sample. dt_ms >= 0."""
        if self.has_data:
            e = self._elapsed_ms + dt_ms
            if e >= _BUCKET_MS:
                # Close the running bucket; whole seconds without a sample repeat its mean
                # (a silent meter is handled by the caller's staleness limit, not here).
                n = e // _BUCKET_MS
                if n > RING_S:
                    n = RING_S
                self._close()
                for _ in range(n - 1):
                    self._push(self._last_w)
                e %= _BUCKET_MS
            self._elapsed_ms = e
        s = self._since_ms + dt_ms
        self._since_ms = s if s < _BUCKET_MS else _BUCKET_MS
        if has_sample:
            if sample_w > SAMPLE_LIMIT_W:
                sample_w = SAMPLE_LIMIT_W
            elif sample_w < -SAMPLE_LIMIT_W:
                sample_w = -SAMPLE_LIMIT_W
            if not self.has_data:
                self.has_data = True
                self._last_w = sample_w
                self._elapsed_ms = 0
                self._acc_w = 0
                self._acc_n = 0
                self._fcount = 0
                self._since_ms = _BUCKET_MS   # the first sample stands for the whole second
            if self._acc_n >= _MAX_BUCKET_N:
                # Keep the mean, halve the weight of the earlier samples: bounds the sum.
                self._acc_w //= 2
                self._acc_n //= 2
            self._acc_w += sample_w
            self._acc_n += 1
            self._fast_add(sample_w)
        self._output()

    def _fast_add(self, w):
        # The sample covers the time since the previous one (a meter reports the recent past).
        h = self._fhead
        self._fw[h] = w
        self._fc[h] = self._since_ms * _FAST_SPAN // _BUCKET_MS
        self._since_ms = 0
        h += 1
        if h == _FAST_N:
            h = 0
        self._fhead = h
        if self._fcount < _FAST_N:
            self._fcount += 1
        # Time-weighted mean of the newest samples covering the last second.
        total = 0
        span = 0
        i = h
        for _ in range(self._fcount):
            i -= 1
            if i < 0:
                i = _FAST_N - 1
            c = self._fc[i]
            if span + c > _FAST_SPAN:
                c = _FAST_SPAN - span
            total += self._fw[i] * c
            span += c
            if span >= _FAST_SPAN:
                break
        # span 0: samples closer together than 4 ms carry no weight; the newest then stands alone
        self.fast_w = total // span if span else w

    def _close(self):
        if self._acc_n:
            self._last_w = self._acc_w // self._acc_n
        self._acc_w = 0
        self._acc_n = 0
        self._push(self._last_w)

    def _push(self, v):
        w = self._window
        if not w:
            return             # no window (filter off): no history needed
        h = self._head
        if self._filled >= w:
            # The bucket leaving the window; for w == RING_S it is the one overwritten now.
            i = h - w
            if i < 0:
                i += RING_S
            self._sum -= self._ring[i]
        self._sum += v
        self._ring[h] = v
        h += 1
        if h == RING_S:
            h = 0
        self._head = h
        if self._filled < RING_S:
            self._filled += 1

    def _output(self):
        if not self.has_data:
            self.fast_w = 0
        fast = self.fast_w
        w = self._window
        n = self._filled if self._filled < w else w
        self.filtered_w = self._sum // n if n else fast
