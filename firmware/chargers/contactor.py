# The phase contactor driver: a relay output and an optional feedback input (the contactor's
# auxiliary contact), both from the board. It owns the switching sequence (control/phase_switch)
# and is the only writer of the relay pin.
#
# Relay energised = 3 phases. After a restart the state comes from the feedback contact where
# one is wired, else from the relay pin as read back (on the ESP32 a reset releases the relay,
# so the contactor really is in its 1p rest position then).
from firmware.control.phase_switch import PhaseSwitch


class Contactor:
    def __init__(self, board, relay_pin, feedback_pin="", cp_off_ms=60000,
                 min_interval_ms=30000):
        self.relay = board.pin(relay_pin, out=True)
        self.feedback = board.pin(feedback_pin, out=False) if feedback_pin else None
        self.ps = PhaseSwitch(True, cp_off_ms, min_interval_ms)
        self.ps.restore(bool(self.relay.value()), self.read_feedback())
        self._drive()

    def read_feedback(self):
        if self.feedback is None:
            return -1
        return 1 if self.feedback.value() else 0

    def _drive(self):
        want = 1 if self.ps.relay_3p else 0
        if self.relay.value() != want:
            self.relay.value(want)

    def step(self, dt_ms, any_current):
        s = self.ps.step(dt_ms, any_current, self.read_feedback())
        self._drive()
        return s

    def to_dict(self):
        ps = self.ps
        return {"installed": True, "relay_3p": ps.relay_3p, "feedback": self.read_feedback(),
                "is_3phase": ps.is_3phase, "switching_state": ps.state, "error": ps.error,
                "last_result": ps.last_result, "next_switch_allowed_in_ms": ps.interval_left_ms}
