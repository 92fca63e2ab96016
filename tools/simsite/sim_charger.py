# The simulated charger behind `make sim`: the charger interface (firmware/chargers/base.py) over
# the simulated EV (tools/simsite/ev.py). Like a real wallbox it takes the set-point and reports
# its state only when "polled" (every poll_ms), so the control loop sees realistic delays.
# Runs inside the micropython process; never deployed.
from firmware.chargers.base import Charger


class SimCharger(Charger):
    kind = "sim"
    supports_cp_disconnect = True

    def __init__(self, ev, name="sim", max_ma=16000, poll_ms=500):
        super().__init__(name, max_ma)
        self.ev = ev
        self.poll_ms = poll_ms
        self.has_meter = True
        self.dead = False          # tests: the wallbox stops answering
        self._offered_ma = 0
        self._cp_off = False

    def offered_ma(self):
        """What the EV sees on the pilot now (the last set-point the wallbox took)."""
        return 0 if self._cp_off else self._offered_ma

    def exchange(self, now_ms):
        """One poll: push set-point and CP state, read the EV's state."""
        if self.dead:
            self.check_reachable(now_ms)
            return
        self._offered_ma = self.limit_ma
        self._cp_off = self.cp_disconnect
        self.pushed_ma = self.limit_ma
        self.pushed_cp = self.cp_disconnect
        self.applied_ma = self.limit_ma
        ev = self.ev
        self.vehicle_connected = ev.connected
        self.charging = ev.charging
        pc = self.phase_currents_ma
        src = ev.phase_currents_ma
        pc[0] = src[0]
        pc[1] = src[1]
        pc[2] = src[2]
        self.seen(now_ms)

    async def run(self, clock):
        while True:
            self.exchange(clock.ticks_ms())
            await self.wait_poll(clock, self.poll_ms)
