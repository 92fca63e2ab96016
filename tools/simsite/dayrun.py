# One simulated day: a Site, a controller, the grid meter, the contactor and the accounting.
# Shared by the benchmark's MicroPython run of the firmware's controller and the CPython runs
# of the baseline controllers, so all of them see exactly the same site, EV and meter.
#
# Timing: the site and the controller step every STEP_MS (250 ms, the reference loop period);
# the grid meter delivers a new sample every meter_ms (1 s, a Modbus meter polled once a
# second) showing the site as it was at that moment.
#
# A controller object has:
#   step(dt_ms, m)   m: Measurements (below), read-only for it
#   offered_ma       current per phase it wants the charger to offer (0 = pause)
#   wants_3phase     its phase wish (only acted on with phase switching allowed)
# and optionally `switch_done(now_ms)`.
from tools.simsite.account import Account

STEP_MS = 250


class Measurements:
    """What the firmware's control task would hand to the power manager."""

    def __init__(self):
        self.grid_w = 0
        self.grid_fresh = False
        self.grid_age_ms = -1
        self.battery_w = 0
        self.battery_age_ms = -1
        self.charging_w = 0
        self.ev_max_phase_ma = 0      # largest phase current the charger measures
        self.voltage_v = 230
        self.is_3phase = False
        self.switching = False
        self.switching_state = 0
        self.now_ms = 0


class InstantContactor:
    """Idealised switch (tests, or without the firmware's sequence): when the controller wants
    other phases, offer 0 A, wait until the EV draws nothing, then move the contactor at once.
    Counts as `switching` meanwhile."""

    def __init__(self, phases):
        self.phases = phases
        self.switching = False

    def step(self, dt_ms, want3, ev_power_w):
        want = 3 if want3 else 1
        if want != self.phases:
            self.switching = True
        if self.switching:
            if ev_power_w == 0:
                self.phases = want
                self.switching = False
        return self.switching


class SequenceContactor:
    """The firmware's own switch sequence (firmware/control/phase_switch.PhaseSwitch: stop,
    CP disconnect, toggle, dead time, CP-off time) driving an ideal contactor (the relay moves
    it at once, no feedback contact). While the CP is disconnected the car sees no phases; it
    starts over afterwards with its reaction delay."""

    def __init__(self, phase_switch, phases):
        ps = self.ps = phase_switch
        ps.restore(phases == 3, -1)
        self.phases = phases
        self.switching = False
        self.state = 0

    def step(self, dt_ms, want3, ev_power_w):
        ps = self.ps
        if ps.state == 0 and want3 != ps.is_3phase:
            ps.request(want3)
        self.state = ps.step(dt_ms, ev_power_w > 0, -1)
        self.phases = 3 if ps.relay_3p else 1
        self.switching = ps.state != 0 or ps.hold_zero
        return self.switching

    @property
    def is_3phase(self):
        return self.ps.is_3phase

    @property
    def ev_phases(self):
        return 0 if self.ps.cp_disconnect else self.phases


def run_day(site, ctl, allow_switch=True, start_phases=1, meter_ms=1000, series_ms=60000,
            max_ma=16000, timer=None, phase_switch=None):
    """Run the whole profile. Returns (Account, series) where series is a list of rows
    [t_s, pv_w, house_w, ev_w, grid_w, battery_w, phases, offered_ma] averaged over series_ms.
    `timer`, when given, replaces ctl.step (the MicroPython run measures it). `phase_switch`:
    a firmware PhaseSwitch to run the real switch sequence (else InstantContactor)."""
    m = Measurements()
    m.voltage_v = site.voltage_v
    # The oracle's power range at the nominal voltage (a varying voltage moves it by ~1 %).
    acct = Account(site.nominal_v, site.ev.min_ma, site.ev.max_ma,
                   allow_1p=allow_switch or start_phases == 1,
                   allow_3p=allow_switch or start_phases == 3)
    contactor = (SequenceContactor(phase_switch, start_phases) if phase_switch is not None
                 else InstantContactor(start_phases))
    seq = phase_switch is not None
    series = []
    sums = [0, 0, 0, 0, 0, 0, 0]
    n_sum = 0
    offered = 0
    meter_acc = meter_ms   # first sample right away
    series_acc = 0
    duration = site.duration_ms
    dt = STEP_MS
    t = 0
    ev = site.ev
    step = timer if timer is not None else ctl.step
    while t < duration:
        phases = contactor.phases
        site.step(dt, offered, contactor.ev_phases if seq else phases)
        t += dt
        acct.step(dt, site, phases)
        # --- measurements ---
        meter_acc += dt
        if meter_acc >= meter_ms:
            meter_acc = 0
            m.grid_w = site.grid_w
            m.voltage_v = site.voltage_v
            m.grid_fresh = True
            m.grid_age_ms = 0
            if site.battery is not None:
                m.battery_w = site.battery_w
                m.battery_age_ms = 0
        else:
            m.grid_fresh = False
            m.grid_age_ms += dt
            if site.battery is not None:
                m.battery_age_ms += dt
        pc = ev.phase_currents_ma
        m.charging_w = (pc[0] + pc[1] + pc[2]) * site.voltage_v // 1000
        m.ev_max_phase_ma = pc[0] if pc[0] > pc[1] else pc[1]
        m.is_3phase = contactor.is_3phase if seq else contactor.phases == 3
        m.switching = contactor.switching
        m.switching_state = contactor.state if seq else (1 if contactor.switching else 0)
        m.now_ms = t
        step(dt, m)
        # --- actuation ---
        if allow_switch:
            contactor.step(dt, ctl.wants_3phase, ev.power_w)
        offered = 0 if contactor.switching else ctl.offered_ma
        if offered > max_ma:
            offered = max_ma
        # --- series for the plot ---
        if series_ms:
            sums[0] += site.pv_w
            sums[1] += site.house_w
            sums[2] += ev.power_w
            sums[3] += site.grid_w
            sums[4] += site.battery_w
            sums[5] += contactor.phases
            sums[6] += offered
            n_sum += 1
            series_acc += dt
            if series_acc >= series_ms:
                series.append([t // 1000] + [s // n_sum for s in sums])
                for i in range(7):
                    sums[i] = 0
                n_sum = 0
                series_acc = 0
    acct.finish()
    return acct, series
