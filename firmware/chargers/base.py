# The charger interface (docs/architecture.md). The control task calls set_current() and
# set_cp_disconnect() and reads the state attributes; it never waits on I/O. Each backend
# defines `async run(clock)`, which owns its I/O: it pushes the set-point and polls the state.
import time

from micropython import const

from firmware.clock import keep_stamp

UNREACHABLE_MS = const(32000)  # DOMAIN 4: a charger silent for 32 s is unreachable
_WAKE_SLICE_MS = const(50)     # a new set-point goes out within this, not at the next poll
CHARGING_MA = const(1000)      # a phase above this counts as "current flowing"
# The control task sets every charger's current each period (250 ms). Without it nobody watches
# the fuse (DLM) or the surplus: after this long the charger pauses by itself. (A dead control
# task is a reset by the hardware watchdog only 10 + 30 s later, and until then our own polls
# would keep a Heidelberg's watchdog fed with the last set-point.)
_CONTROL_SILENT_MS = const(3000)


class Charger:
    supports_cp_disconnect = False
    kind = "none"
    # phase_currents_ma are measured (else estimated): a class attribute (a backend that knows
    # only at run time sets its own), one instance attribute fewer per charger.
    has_meter = False

    def __init__(self, name="", max_ma=32000):
        self.name = name
        self.max_ma = max_ma            # what the charger itself allows (cable, jumper)
        self.limit_ma = 0               # the set-point we want it to use (0 = pause)
        self.cp_disconnect = False      # we want the control pilot disconnected
        self.reachable = False
        self.vehicle_connected = False
        self.charging = False
        self.phase_currents_ma = [0, 0, 0]
        self.applied_ma = -1            # the set-point the charger last confirmed
        self.last_seen_ms = None        # clock ticks of the last good answer
        self.errors = 0                 # failed exchanges (timeouts, bad answers)
        self.last_error = ""
        self.pushed_ma = -1             # the set-point / CP state of the last good exchange
        self.pushed_cp = False
        # DLM (chargers/dlm_step.py): the largest set-point of the last few seconds and how
        # long it still counts. Only this much of what the charger reports is "ours".
        self.allowed_ma = 0
        self.allowed_left_ms = 0
        self.set_since_poll = False     # set_current() was called since the last wait_poll()
        self.set_ms = None              # when wait_poll() last saw that
        self.set_missed = False         # the previous wait_poll() saw none

    # ---- called by the control task (no I/O) ----
    def set_current(self, limit_ma):
        self.limit_ma = 0 if limit_ma <= 0 else min(limit_ma, self.max_ma)
        self.set_since_poll = True

    def set_cp_disconnect(self, disconnect):
        self.cp_disconnect = bool(disconnect) and self.supports_cp_disconnect

    def current_flowing(self):
        """True when the charger reports current, or cannot tell: the contactor must not move
        then. Telling needs a good exchange that pushed 0 A and read the state after it
        (pushed_ma is set at the end of such an exchange, and -1 after a failed one): an older
        reading of 0 A from a car that only paused by itself, behind a wallbox that stopped
        answering before it took the pause, says nothing about the next seconds."""
        if not self.reachable or self.pushed_ma != 0:
            return True
        pc = self.phase_currents_ma
        return self.charging or pc[0] > CHARGING_MA or pc[1] > CHARGING_MA or pc[2] > CHARGING_MA

    # ---- used by the backends ----
    def seen(self, now_ms):
        self.last_seen_ms = now_ms
        self.reachable = True

    def failed(self, now_ms, why):
        self.errors += 1
        self.last_error = why
        self.check_reachable(now_ms)

    def check_reachable(self, now_ms):
        """(Every control period: this also keeps last_seen_ms within ticks_diff()'s reach, so
        last_seen_age_ms of a charger gone for weeks reads as old, at most ~3.1 days.)"""
        t = self.last_seen_ms
        if t is not None:
            t = self.last_seen_ms = keep_stamp(now_ms, t)
        if t is None or time.ticks_diff(now_ms, t) > UNREACHABLE_MS:
            if self.reachable:
                self.reachable = False
            self.vehicle_connected = False
            self.charging = False
            pc = self.phase_currents_ma
            pc[0] = pc[1] = pc[2] = 0
        return self.reachable

    def to_dict(self, now_ms):
        age = None if self.last_seen_ms is None else time.ticks_diff(now_ms, self.last_seen_ms)
        return {"name": self.name, "type": self.kind, "reachable": self.reachable,
                "vehicle_connected": self.vehicle_connected, "charging": self.charging,
                "phase_currents": list(self.phase_currents_ma), "set_current": self.limit_ma,
                "applied_current": self.applied_ma, "cp_disconnect": self.cp_disconnect,
                "supports_cp_disconnect": self.supports_cp_disconnect,
                "last_seen_age_ms": age, "errors": self.errors, "last_error": self.last_error}

    async def wait_poll(self, clock, poll_ms):
        """Sleep until the next poll, or less when a set-point or CP change has not been sent
        yet: a lower current must reach the wallbox at once (DLM reaction time), not a poll
        period later. A control task that stopped setting currents pauses the charger."""
        # Two polls in a row without a set_current(): after the event loop was blocked for a
        # while (a slow DNS lookup) the control task may simply not have had its turn yet.
        now = clock.ticks_ms()
        if self.set_since_poll:
            self.set_since_poll = False
            self.set_ms = now
            self.set_missed = False
        elif self.set_ms is not None:
            if self.set_missed and time.ticks_diff(now, self.set_ms) > _CONTROL_SILENT_MS:
                self.limit_ma = 0
            self.set_missed = True
        left = poll_ms
        while left > 0 and self.limit_ma == self.pushed_ma and \
                self.cp_disconnect == self.pushed_cp:
            step = _WAKE_SLICE_MS if left > _WAKE_SLICE_MS else left
            await clock.sleep_ms(step)
            left -= step
