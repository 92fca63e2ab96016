# The one source of time for every task. Tests and the simulator scale it (SIM_SPEED) or drive it
# by hand; nothing else in the firmware reads time.ticks_ms() or sleeps on its own.
#
# ticks wrap (2**30 ms ~ 12.4 days on the ESP32): compare them only with time.ticks_diff(), and
# only while the true difference is below 2**29 ms (~6.2 days). A stamp kept longer than that
# (a meter's last reading, a charger's last answer) reads back as negative, then after 12.4 days
# as young again: its owner passes it through keep_stamp() at least every AGE_CAP_MS
# (docs/uptime-audit.md).
import time
import asyncio

from micropython import const

AGE_CAP_MS = const(1 << 28)   # ~3.1 days: the oldest a kept stamp gets


def keep_stamp(now_ms, stamp_ms):
    """stamp_ms, or when it is older than AGE_CAP_MS (or so old ticks_diff() reads it as in the
    future) a stamp exactly AGE_CAP_MS old: ages computed from it stop at the cap instead of
    folding back."""
    age_ms = time.ticks_diff(now_ms, stamp_ms)
    if age_ms < 0 or age_ms > AGE_CAP_MS:
        return time.ticks_add(now_ms, -AGE_CAP_MS)
    return stamp_ms


class Clock:
    """Real time, optionally running `speed` times faster (integer factor)."""

    def __init__(self, speed=1):
        self.speed = max(1, int(speed))
        self._raw_last = time.ticks_ms()
        self._now = self._raw_last

    def ticks_ms(self):
        raw = time.ticks_ms()
        d = time.ticks_diff(raw, self._raw_last)
        if d:
            self._raw_last = raw
            self._now = time.ticks_add(self._now, d * self.speed)
        return self._now

    async def sleep_ms(self, delay_ms):
        # Sleep `delay_ms` of this clock's time.
        await asyncio.sleep_ms(delay_ms // self.speed if delay_ms >= self.speed else (1 if delay_ms > 0 else 0))


class ManualClock:
    """Time moved only by advance(): for tests that must not sleep for real."""

    def __init__(self, start_ms=0):
        self._now = start_ms

    def ticks_ms(self):
        return self._now

    def advance(self, delta_ms):
        self._now = time.ticks_add(self._now, delta_ms)

    async def sleep_ms(self, delay_ms):
        # Advance the clock instead of waiting, but still yield to other tasks.
        self.advance(delay_ms)
        await asyncio.sleep_ms(0)
