# Watchdog policy: the hardware WDT is fed only while the control loop is alive.
#
# Feeding from a timer or from "any task that runs" would keep a board alive whose control loop
# hangs (a stuck meter read, a dead lock in a task): the one thing that must keep running is the
# control step, so it records a heartbeat (ControlTask.heartbeat_ms) and this task feeds the WDT
# only while that heartbeat is recent. A stopped heartbeat -> no feeding -> hardware reset.
import time

from micropython import const

WDT_TIMEOUT_MS = const(30000)   # hardware timeout: generous, a reset costs a reboot of ~5 s
FEED_PERIOD_MS = const(1000)
STALE_MS = const(10000)         # 40 missed control periods of 250 ms: the loop is dead


class Watchdog:
    """`heartbeat()` returns the ticks_ms of the control loop's last step, or None before the
    first one (then the watchdog's own start counts, so a loop that never starts is caught)."""

    def __init__(self, board, clock, heartbeat, stale_ms=STALE_MS):
        self.board = board
        self.clock = clock
        self.heartbeat = heartbeat
        self.stale_ms = stale_ms
        self.started_ms = None
        self.feeds = 0
        self.starving = False       # True once feeding stopped: a reset is coming

    def tick(self, now_ms):
        """One feeding decision (the task calls this every FEED_PERIOD_MS)."""
        if self.started_ms is None:
            self.started_ms = now_ms
        beat = self.heartbeat()
        silent_ms = time.ticks_diff(now_ms, self.started_ms if beat is None else beat)
        if silent_ms < self.stale_ms:
            self.board.wdt_feed()
            self.feeds += 1
            self.starving = False
        elif not self.starving:
            self.starving = True
            print("watchdog: control loop silent for %d ms, not feeding: reset follows"
                  % silent_ms)

    def to_dict(self):
        return {"timeout_ms": WDT_TIMEOUT_MS, "feeds": self.feeds, "starving": self.starving}

    async def run(self):
        self.board.wdt_start(WDT_TIMEOUT_MS)
        while True:
            self.tick(self.clock.ticks_ms())
            await self.clock.sleep_ms(FEED_PERIOD_MS)


def install(app):
    control = app.control
    wd = Watchdog(app.board, app.clock, lambda: control.heartbeat_ms)
    app.watchdog = wd
    app.registry.add("system/watchdog", wd)
    return [wd.run()]
