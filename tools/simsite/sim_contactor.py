# The simulated phase contactor: follows the relay pin after `lag_ms` and drives the feedback pin
# (its auxiliary contact) accordingly. `stuck = True` simulates a welded / dead contactor.
# Runs inside the micropython process; never deployed.


class SimContactor:
    def __init__(self, board, relay_pin="contactor", feedback_pin="contactor_feedback",
                 lag_ms=100):
        self.relay = board.pin(relay_pin, out=True)
        self.feedback = board.pin(feedback_pin, out=False) if feedback_pin else None
        self.lag_ms = lag_ms
        self.closed_3p = bool(self.relay.value())
        self.stuck = False
        self._pending_ms = -1
        self._last = self.closed_3p
        if self.feedback is not None:
            self.feedback.value(1 if self.closed_3p else 0)

    def step(self, dt_ms):
        r = bool(self.relay.value())
        if r != self._last:
            self._last = r
            self._pending_ms = self.lag_ms
        if self._pending_ms >= 0:
            self._pending_ms -= dt_ms
            if self._pending_ms < 0 and not self.stuck:
                self.closed_3p = r
        if self.feedback is not None:
            self.feedback.value(1 if self.closed_3p else 0)

    def phases(self):
        return 3 if self.closed_3p else 1
