# A realistic electric vehicle behind the wallbox.
#
# - It reads the offered current (CP duty cycle) with a reaction delay (~3 s: the car's charger
#   samples the PWM and negotiates with its BMS), then ramps towards it (a few A per second up,
#   faster down), like the cars logged by peers (OpenEVSE, evcc issue threads).
# - It draws 95-100 % of the offered current (the on-board charger regulates a little under the
#   limit); the percentage drifts once a minute, seeded.
# - Offered < min_ma (6 A, IEC 61851) means pause: current falls to 0 at once.
# - It charges on the phases the contactor gives (0 = contactor open / switching), limited to the
#   phases the car's own charger has (`car_phases`). A change of phases restarts the car.
from array import array

from tools.simsite.rng import Rng

_SLOT_MS = 250  # granularity of the reaction-delay line


class EV:
    def __init__(self, min_ma=6000, max_ma=16000, delay_ms=3000, ramp_up_ma_s=4000,
                 ramp_down_ma_s=16000, car_phases=3, seed=1, capacity_wh=0, connected=True,
                 draw_min_pct=95):
        """`capacity_wh` 0 = never full (the benchmark wants every watt the controller offers)."""
        self.min_ma = min_ma
        self.max_ma = max_ma
        self.ramp_up_ma_s = ramp_up_ma_s
        self.ramp_down_ma_s = ramp_down_ma_s
        self.car_phases = car_phases
        self.capacity_wh = capacity_wh
        self.connected = connected
        self.draw_min_pct = draw_min_pct
        self._rng = Rng(seed * 104729 + 3)
        n = delay_ms // _SLOT_MS
        self._delay = array("l", [0] * (n if n > 0 else 1))
        self._head = 0
        self._ring_live = False
        self._slot_acc_ms = 0
        self._pct_acc_ms = 0
        self._draw_pct = 100 - self._rng.randint(0, 100 - draw_min_pct)
        self.current_ma = 0          # what the car's charger regulates to, per phase, before the draw %
        self.phases = 0              # phases it is charging on now
        self.phase_currents_ma = [0, 0, 0]
        self.power_w = 0
        self.energy_wms = 0          # W*ms charged (integer accumulator)
        self.full = False

    @property
    def charging(self):
        return self.power_w > 0

    @property
    def energy_wh(self):
        return self.energy_wms // 3600000

    def step(self, dt_ms, offered_ma, phases, voltage_v=230):
        """Advance by dt_ms with `offered_ma` per phase (0 = pause) on `phases` (0, 1 or 3)."""
        ph = phases if phases < self.car_phases else self.car_phases
        if not self.connected or self.full:
            ph = 0
        if ph != self.phases:
            # Contactor moved (or car unplugged): current is gone now, the car starts over.
            self.phases = ph
            self.current_ma = 0
            d = self._delay
            for i in range(len(d)):
                d[i] = 0
        want = offered_ma if (ph and offered_ma >= self.min_ma) else 0
        if want > self.max_ma:
            want = self.max_ma
        # Reaction delay: a ring of what was offered over the last delay_ms, one slot per 250 ms.
        d = self._delay
        self._slot_acc_ms += dt_ms
        while self._slot_acc_ms >= _SLOT_MS:
            self._slot_acc_ms -= _SLOT_MS
            d[self._head] = want
            self._head += 1
            if self._head == len(d):
                self._head = 0
        target = d[self._head]  # the oldest slot: offered delay_ms ago
        if want == 0:
            # A pause (< 6 A) is obeyed at once, and forgets what was offered before it: after a
            # pause the car needs the full delay to start again.
            target = 0
            if self._ring_live:
                for i in range(len(d)):
                    d[i] = 0
                self._ring_live = False
        else:
            self._ring_live = True
        cur = self.current_ma
        if target == 0:
            cur = 0
        elif cur < target:
            if cur < self.min_ma:
                cur = self.min_ma if target >= self.min_ma else target
            else:
                cur += self.ramp_up_ma_s * dt_ms // 1000
                if cur > target:
                    cur = target
        elif cur > target:
            cur -= self.ramp_down_ma_s * dt_ms // 1000
            if cur < target:
                cur = target
        self.current_ma = cur
        # Draw percentage drifts once a minute.
        self._pct_acc_ms += dt_ms
        if self._pct_acc_ms >= 60000:
            self._pct_acc_ms -= 60000
            self._draw_pct = 100 - self._rng.randint(0, 100 - self.draw_min_pct)
        i_ma = cur * self._draw_pct // 100
        pc = self.phase_currents_ma
        pc[0] = i_ma if ph else 0
        pc[1] = i_ma if ph == 3 else 0
        pc[2] = pc[1]
        self.power_w = (pc[0] + pc[1] + pc[2]) * voltage_v // 1000
        self.energy_wms += self.power_w * dt_ms
        if self.capacity_wh and self.energy_wms >= self.capacity_wh * 3600000:
            self.full = True
        return self.power_w
