# The 1p/3p switching sequence with a phase contactor (DOMAIN 3), as pure logic.
#
# The contactor must never switch with current flowing: the sequence first holds every charger
# at 0 A, waits until all of them report no current, disconnects the control pilot (so the car
# sees a "re-plug" and re-detects its phases), toggles the relay, waits for the contactor and
# checks its auxiliary contact, and reconnects the pilot only after the configured CP-off time.
#
# Convention: relay energised = 3 phases (the contactor adds L2/L3), de-energised = 1 phase.
# Integer-only, no I/O: the caller passes dt_ms, whether any charger still reports current and
# the feedback input (-1 = no feedback contact wired), and applies relay_3p / hold_zero /
# cp_disconnect. step() allocates nothing.
from micropython import const

# switching_state values, as low_level_state.switching_state shows them.
MONITORING = const(0)
START_SWITCHING = const(1)
STOPPING = const(2)
DISCONNECTING_CP = const(3)
TOGGLING_CONTACTOR = const(4)
WAIT_UNTIL_SWITCHED = const(5)

# error: latched until clear_error() (the API's clear command).
ERR_NONE = const(0)
ERR_FEEDBACK = const(1)  # the auxiliary contact disagrees with the relay drive

# last_result: how the most recent switch attempt ended (for the API / display).
RESULT_NONE = const(0)
RESULT_SWITCHED = const(1)
RESULT_ABORTED_CAR_DRAWS = const(2)  # a car kept drawing current after being told to stop
RESULT_ABORTED_CONTACTOR = const(3)  # the contactor did not follow the relay: error latched

# DOMAIN 3: ignore the feedback contact 1.5 s after driving the relay, debounce 5 ms.
_FEEDBACK_IGNORE_MS = const(1500)
_FEEDBACK_DEBOUNCE_MS = const(5)
# DOMAIN 3: 2 s dead time after toggling before the state is verified; retry the drive twice.
_DEAD_TIME_MS = const(2000)
_MAX_RETRIES = const(2)
# Give the chargers time to act on the CP disconnect before the contactor moves.
_CP_SETTLE_MS = const(1000)
# A car must stop within 3 s of a PWM pause (IEC 61851, DOMAIN 4); chargers report their
# currents with a polling delay, so allow 15 s before the switch is given up.
STOP_TIMEOUT_MS = const(15000)
# After a car kept drawing through a stop, the next attempt waits at least this long: every
# attempt holds all cars at 0 A for the stop timeout, and after the plain min_switch_interval
# (10..30 s) a car that never stops was paused 60 % of the time, its charging cycled every
# 25-45 s.
_ABORT_RETRY_MS = const(300000)


class PhaseSwitch:
    def __init__(self, installed=True, cp_off_ms=60000, min_interval_ms=30000,
                 stop_timeout_ms=STOP_TIMEOUT_MS):
        self.installed = installed
        self.cp_off_ms = cp_off_ms
        self.min_interval_ms = min_interval_ms
        self.stop_timeout_ms = stop_timeout_ms
        self.state = MONITORING
        self.error = ERR_NONE
        self.last_result = RESULT_NONE
        self.relay_3p = False      # drive the relay so
        self.is_3phase = False     # the contactor's real state as far as we know it
        self.hold_zero = False     # chargers must be held at 0 A
        self.cp_disconnect = False  # chargers must disconnect the control pilot
        self.target_3p = False
        self.interval_left_ms = 0   # until another switch may start
        self._timer_ms = 0          # state timer (counts down)
        self._stop_left_ms = 0      # time left to reach a clean 0 A (Stopping .. the toggle)
        self._cp_left_ms = 0        # CP-off time left
        self._ignore_ms = _FEEDBACK_IGNORE_MS
        self._mismatch_ms = -1      # -1: feedback currently agrees
        self._retries = 0
        self._cp_used = False
        self._shown = False         # START_SWITCHING stays visible for one step

    def restore(self, relay_3p, feedback):
        """After a restart: adopt the contactor's real state (the feedback contact where wired,
        else the relay pin as read back) and drive the relay consistently with it."""
        real = relay_3p if feedback < 0 else feedback == 1
        self.relay_3p = real
        self.is_3phase = real
        self.target_3p = real
        self.state = MONITORING
        self._ignore_ms = _FEEDBACK_IGNORE_MS

    def request(self, want_3p, cp_supported=True):
        """Ask for a switch to 3p (True) or 1p (False). Returns True when a sequence started or
        nothing needs to change; False when it must wait (busy, error, too soon, no contactor)."""
        if want_3p == self.is_3phase and self.state == MONITORING:
            return True
        if (not self.installed or self.state != MONITORING or self.error != ERR_NONE
                or self.interval_left_ms > 0):
            return False
        self.target_3p = want_3p
        self._cp_used = cp_supported
        self.state = START_SWITCHING
        self.hold_zero = True
        self._shown = False
        return True

    def clear_error(self):
        """The API's clear command: forget a latched contactor error and look again."""
        self.error = ERR_NONE
        self._mismatch_ms = -1
        self._ignore_ms = _FEEDBACK_IGNORE_MS
        if self.state == MONITORING:
            self.hold_zero = False

    def _finish(self, result):
        # Ends a sequence. A contactor error (RESULT_ABORTED_CONTACTOR) is latched here too: one
        # method instead of two (each costs heap); hold_zero then stays on.
        if result == RESULT_ABORTED_CONTACTOR:
            self.error = ERR_FEEDBACK
        self.last_result = result
        self.state = MONITORING
        self.hold_zero = self.error != ERR_NONE
        self.cp_disconnect = False
        self.interval_left_ms = self.min_interval_ms
        if result == RESULT_ABORTED_CAR_DRAWS and self.interval_left_ms < _ABORT_RETRY_MS:
            self.interval_left_ms = _ABORT_RETRY_MS

    def _stop_again(self):
        """Current after 0 A was seen: back to waiting for 0 A, unless the one budget from
        Stopping to the toggle is spent (a flickering reading may never show current in
        Stopping itself: give up here then)."""
        if self._stop_left_ms <= 0:
            self._finish(RESULT_ABORTED_CAR_DRAWS)
        else:
            self.state = STOPPING

    def step(self, dt_ms, any_current, feedback=-1):
        """Advance by dt_ms. any_current: some charger reports current flowing (or cannot be
        read). feedback: -1 no contact wired, else 0/1 = contactor reports 1p/3p."""
        if self.interval_left_ms > 0:
            self.interval_left_ms = max(0, self.interval_left_ms - dt_ms)
        if self._cp_left_ms > 0:
            self._cp_left_ms = max(0, self._cp_left_ms - dt_ms)
        if self._ignore_ms > 0:
            self._ignore_ms = max(0, self._ignore_ms - dt_ms)
        # Debounced comparison of the auxiliary contact with the drive.
        mismatch = False
        if feedback >= 0 and self._ignore_ms == 0:
            if (feedback == 1) != self.relay_3p:
                if self._mismatch_ms < 0:
                    self._mismatch_ms = 0
                else:
                    self._mismatch_ms += dt_ms
                mismatch = self._mismatch_ms >= _FEEDBACK_DEBOUNCE_MS
            else:
                self._mismatch_ms = -1
        s = self.state
        if mismatch and self.error == ERR_NONE and s < TOGGLING_CONTACTOR:
            # The contactor moved (or fell) on its own: latch, current 0.
            self._finish(RESULT_ABORTED_CONTACTOR)
            s = MONITORING
        if s == MONITORING:
            # Report the contactor's real state: the contact where wired, else the drive.
            if feedback >= 0 and self._ignore_ms == 0:
                self.is_3phase = feedback == 1
            elif feedback < 0:
                self.is_3phase = self.relay_3p
        elif s == START_SWITCHING:
            # Stay one step, so every state is visible in low_level_state at least once.
            if self._shown:
                self.state = STOPPING
                self._stop_left_ms = self.stop_timeout_ms
            self._shown = True
        elif s == STOPPING:
            # One budget from Stopping to the toggle, also spent while Disconnecting CP: a
            # reading that flickers around 1 A (current, none, none, none, current, ...) sent
            # the sequence back to Stopping with a new 15 s each time, holding 0 A for ever.
            self._stop_left_ms -= dt_ms
            if not any_current:
                if self._cp_used:
                    self.state = DISCONNECTING_CP
                    self.cp_disconnect = True
                    self._cp_left_ms = self.cp_off_ms
                    self._timer_ms = _CP_SETTLE_MS
                else:
                    self.state = TOGGLING_CONTACTOR
            elif self._stop_left_ms <= 0:
                # Never force the contactor under load: give up, keep the phases.
                self._finish(RESULT_ABORTED_CAR_DRAWS)
        elif s == DISCONNECTING_CP:
            self._stop_left_ms -= dt_ms
            if any_current:
                self._stop_again()
            else:
                self._timer_ms -= dt_ms
                if self._timer_ms <= 0:
                    self.state = TOGGLING_CONTACTOR
        elif s == TOGGLING_CONTACTOR:
            if any_current:
                self._stop_again()    # current again just before the toggle
            else:
                self.relay_3p = self.target_3p
                self._ignore_ms = _FEEDBACK_IGNORE_MS
                self._mismatch_ms = -1
                self.state = WAIT_UNTIL_SWITCHED
                self._timer_ms = _DEAD_TIME_MS
                self._retries = 0
        elif s == WAIT_UNTIL_SWITCHED:
            if self._timer_ms > 0:
                self._timer_ms -= dt_ms
            if self._timer_ms <= 0:
                ok = feedback < 0 or (feedback == 1) == self.target_3p
                if not ok:
                    if self._retries < _MAX_RETRIES:
                        # Drive the relay again (off and on in one step is too short for a
                        # contactor; re-asserting the drive resets our timers).
                        self._retries += 1
                        self.relay_3p = self.target_3p
                        self._ignore_ms = _FEEDBACK_IGNORE_MS
                        self._mismatch_ms = -1
                        self._timer_ms = _DEAD_TIME_MS
                    else:
                        self.is_3phase = self.relay_3p if feedback < 0 else feedback == 1
                        self._finish(RESULT_ABORTED_CONTACTOR)
                else:
                    self.is_3phase = self.target_3p
                    if self._cp_left_ms == 0:
                        self._finish(RESULT_SWITCHED)
        return self.state
