# The power manager's control step (DOMAIN 1, the reference vendor's first-generation power
# manager): from grid/battery power decide how much the chargers may draw, whether charging is on
# and whether it should run on 1 or 3 phases, with thresholds and hysteresis.
#
# Pure logic: integer-only (W, mA, ms), no I/O, time passed in as dt_ms. step() allocates
# nothing (tested under micropython.heap_lock()); every intermediate stays within +-2**30
# (inputs are clamped on entry, see _P_LIMIT_W / _I_LIMIT_MA, tested by an instrumented run).
# The algorithm, timers and bit meanings are described in docs/control.md.
from micropython import const

from firmware.control.filters import CloudFilter, window_s

# Charge modes (power_manager/charge_mode)
MODE_FAST = const(0)
MODE_OFF = const(1)
MODE_PV = const(2)
MODE_MIN_PV = const(3)

# phase_switching_mode
PHASES_AUTO = const(0)
PHASES_1 = const(1)
PHASES_3 = const(2)
PHASES_EXTERNAL = const(3)
PHASES_PV1_FAST3 = const(4)

# charging_blocked bits (low_level_state). 1..4 and 16/32 are set here; the glue ORs its own
# reasons (8, 64, 128) into blocked_flags. Any bit except BLOCKED_BATTERY_STALE/GRID_STALE in
# Min+PV mode (see below) means: current 0, now, without hysteresis.
BLOCKED_GRID_STALE = const(1)      # grid meter missing or older than stale_ms: PV control suspended
BLOCKED_BATTERY_STALE = const(2)   # battery meter configured but missing/stale: PV control suspended
BLOCKED_CONFIG = const(4)          # config error that makes the selected mode impossible
BLOCKED_CONTACTOR = const(8)       # (glue) contactor monitoring error latched
BLOCKED_NO_PHASES = const(16)      # external control: phases_wanted == 0, no current release
BLOCKED_DLM = const(32)            # max_current_limited (DLM) below the minimum current
BLOCKED_CHARGER = const(64)        # (glue) charger unreachable / does not support CP disconnect
BLOCKED_INPUT = const(128)         # (glue) blocked by an input or any other external reason

# config_error_flags (power_manager/state); 16 (DLM without phase currents) is the DLM's.
CFG_ERR_PHASE_SWITCHING = const(1)
CFG_ERR_MAX_CURRENT = const(2)
CFG_ERR_NO_CHARGERS = const(4)
CFG_ERR_NO_METER = const(8)
CFG_ERR_DLM_NO_CURRENTS = const(16)

SLOT_NONE = const(255)
_SLOTS = const(7)                  # meter slots 0..6

_NOMINAL_V = const(230)
_V_MIN = const(180)                # plausible measured phase voltage; else nominal
_V_MAX = const(270)
# The power thresholds follow the measured voltage once it has moved this far from the one they
# were computed at: a sustained 240 V moves them, the grid's second-to-second jitter does not
# (thresholds moving with a +-2 V jitter restart the on/off block: day1 capture 90.4 -> 87.5 %,
# docs/benchmark.md finding 7). At most 2 V off: 12 W on 1380 W.
_V_RESCALE = const(3)
_P_LIMIT_W = const(1000000)        # every power input is clamped to +-1 MW
_I_LIMIT_MA = const(1000000)       # currents clamped to 0..1000 A
_STALE_MS = const(125000)          # reference: battery/PV data older than 125 s suspend PV control
_IDLE_W = const(100)               # below this the chargers count as "not charging" (gain 8/8)
_MAX_DT_MS = const(3600000)        # a longer gap (stalled loop) counts as one hour
_HYST_MIN_S = const(10)            # debug_config hysteresis_time range (DOMAIN 1)
_HYST_MAX_S = const(3600)
_HYST_DEFAULT_S = const(240)   # == api HYSTERESIS_TIME_DEFAULT_S (benchmarked)
_MIN_CURRENT_DEFAULT_MA = const(6000)
_NOISE_CAP_W = const(10)           # noise margin: a sample-to-sample change counts <= 2 x mean + this
# Early on/off decisions in PV mode (docs/control.md step 9, measured in docs/benchmark.md): the
# wait for a switch-off ends early once the deficit below the minimum power, integrated over the
# wait, equals _STOP_DEPTH_16/16 of the hysteresis at full depth (surplus 0: 75 s of 240 s); a
# switch-on once the excess above it (counted up to the minimum power again) equals
# _START_DEPTH_16/16 of it (surplus >= 2 x minimum: 120 s of 240 s). A shallow deficit or excess
# waits the whole hysteresis as before. Every early decision spends a token of a small bucket
# (_EARLY_TOKENS, one back every _EARLY_REFILL_MS), so a day of passing clouds cannot turn them
# into a start every few minutes: without a token the plain hysteresis applies.
_STOP_DEPTH_16 = const(5)
_START_DEPTH_16 = const(8)
_EARLY_TOKENS = const(2)
_EARLY_REFILL_MS = const(7200000)
_EARLY_CAP_MS = const(14400000)    # _EARLY_TOKENS x _EARLY_REFILL_MS
_DEPTH_ONE = const(256)            # full depth (a deficit or excess of the minimum power)
# Grid-share ledger (docs/control.md step 9, measured in docs/benchmark.md): the energy charged in
# PV mode and the part of it above the fast surplus (= from the grid), in 1/4 Wh, both decaying by
# 7/8 every _LEDGER_DECAY_MS (half-life ~2.6 h: "the share of the last hours"; a night forgets
# yesterday). While its share is above _LEDGER_SHARE_PM per mille, a switch-off wait that has
# reached the early depth (_STOP_DEPTH_16) within the first half of the block stops even without
# an early token, spending the ledger's own token (one, back after _LEDGER_REFILL_MS): deep dips
# stop while the day's grid share is high; long shallow waits and days of many dips keep the
# plain rule.
_LEDGER_SHARE_PM = const(30)
_LEDGER_DECAY_MS = const(1800000)
_LEDGER_REFILL_MS = const(14400000)
_LEDGER_UNIT = const(900000)       # W x ms in 1/4 Wh
_LEDGER_MAX = const(16777216)      # 2**24 units (4.2 MWh): x _LEDGER_SHARE_PM stays < 2**30
_LEDGER_MAX_W = const(1000000)     # power counted per step (the inputs' clamp)

# Phase switching in automatic 1p/3p, PV power (docs/control.md step 7, measured in
# docs/benchmark.md, finding 6). The switch down 3p->1p is what stops import, the switch
# up only adds the surplus above the 1p maximum, so:
# - every automatic 1p->3p switch spends a token of a bucket of _PHASE_TOKENS (one back every
#   _PHASE_REFILL_MS); without a token the switch up waits. A token comes back 16 h after it was
#   spent: longer than any day's 3p surplus lasts, so one day has at most two switches up (four
#   moves), and the night refills the bucket for the next morning (with 8 h a long summer day
#   got a third round trip: 6 moves, docs/benchmark.md "A bigger array");
# - with a token left, a 3p->1p switch acts early once the deficit below the 3p minimum,
#   integrated over the wait, equals _STOP_DEPTH_16/16 of the hysteresis at full depth (a surplus
#   at the 1p minimum: 75 s of 240 s), as the early switch-off does; a shallow deficit waits the
#   whole block;
# - with no token left (PV mode), a 3p->1p switch is held up to _PHASE_HOLD_HYST hysteresis times:
#   meanwhile the minimum power is the 3p minimum less half the 1p minimum (3450 W at 6 A), so a
#   shallow dip rides on 3p and a deep one pauses charging (the on/off rule) instead of moving
#   the contactor twice; only a deficit that lasts that long switches down.
_PHASE_TOKENS = const(2)
_PHASE_REFILL_MS = const(57600000)
_PHASE_CAP_MS = const(115200000)   # _PHASE_TOKENS x _PHASE_REFILL_MS
_PHASE_HOLD_HYST = const(6)
# A hold that has run out is judged once: if the surplus (a ~1 min average, _SMOOTH_MS) lies more
# than the gap between the 3p and the 1p minimum below its recent peak (which falls by 1 W every
# _PEAK_MS_PER_W ms, 3 kW/h: faster than an evening declines), it fell suddenly (a cloud, ~4 kW
# within the 24 min), and the hold goes on up to _PHASE_HOLD_LONG_HYST hysteresis times (96 min);
# else (the evening) it switches down as before.
_PEAK_MS_PER_W = const(1200)
_SMOOTH_MS = const(64000)
_PHASE_HOLD_LONG_HYST = const(24)

# Hard blocks: current 0 immediately, whatever the hysteresis says.
HARD_BLOCKS = const(4 | 8 | 16 | 32 | 64 | 128)   # also read by the display


def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


def _refill(bucket_ms, dt_ms, cap_ms):
    # A token bucket kept as ms of refill time (a token is its refill period): fills with time
    # up to its capacity (tokens x refill period).
    t = bucket_ms + dt_ms
    return t if t < cap_ms else cap_ms


class PowerManager:
    def __init__(self):
        self._filter = CloudFilter()
        self._restless16 = 0     # 16 x the mean sample-to-sample change of the control error (W)
        self._last_err_w = None  # the control error at the last fresh sample (None: none yet)
        self._track_w = 0        # the power the current is set from (PV modes: less the margin)
        # configuration (configure())
        self.phase_switching_mode = PHASES_1
        self.excess_charging_enable = False
        self.target_power_from_grid = 0
        self.guaranteed_power = 0
        self.cloud_filter_mode = 0
        self.meter_slot_grid_power = SLOT_NONE
        self.meter_slot_battery_power = SLOT_NONE
        self.battery_mode = 0
        self.battery_inverted = False
        self.battery_deadzone = 0
        self.hysteresis_ms = _HYST_DEFAULT_S * 1000
        self.stale_ms = _STALE_MS
        self.max_current_ma = 0
        self.min_current_1p_ma = _MIN_CURRENT_DEFAULT_MA
        self.min_current_3p_ma = _MIN_CURRENT_DEFAULT_MA
        self.contactor_installed = False
        self.charger_count = 0
        self._min_1p_w = 0
        self._max_1p_w = 0
        self._min_3p_w = 0
        self._scale_v = _NOMINAL_V     # the voltage the powers below were computed at
        self._can_1p = True
        self.config_error_flags = 0
        self.charge_mode = MODE_FAST
        self.phases_wanted = 0
        # inputs, set by the glue before every step
        self.grid_w = 0
        self.grid_fresh = False
        self.grid_age_ms = -1          # < 0: no sample yet
        self.battery_w = 0
        self.battery_age_ms = -1
        self.charging_w = 0
        self.voltage_v = 0
        self.is_3phase = False
        self.switching = False
        self.switching_state = 0       # 0..5 from the phase switcher (reported as is)
        self.blocked_flags = 0
        self.dlm_limit_ma = _I_LIMIT_MA  # lowered by DLM (mA per phase for all chargers)
        self.charge_manager_allocated_current = 0  # set by the glue after allocation
        # outputs / low_level_state
        self.power_at_meter = 0
        self.power_at_meter_filtered = 0
        self.power_available = 0
        self.power_available_filtered = 0
        self.overall_min_power = 0
        self.threshold_3to1 = 0
        self.threshold_1to3 = 0
        self.charge_manager_available_current = 0
        self.max_current_limited = 0
        self.uptime_past_hysteresis = False
        self.wants_3phase = False      # commanded phase (after hysteresis): the phase switcher's goal
        self.wants_3phase_last = False  # latest raw phase decision
        self.is_on_last = False        # commanded on state (after hysteresis)
        self.wants_on_last = False     # latest raw on/off decision
        self.wants_on = False          # == is_on_last, for the glue
        self.phase_state_change_delay = 0  # ms until a changed phase decision may act
        self.on_state_change_delay = 0     # ms until a changed on/off decision may act
        self.phase_state_change_blocked = False
        self.on_state_change_blocked = False
        self.charging_blocked = 0
        # private state
        self._uptime_ms = 0
        self._just_switched = False    # a phase switch completed in this step
        self._mode_free = False        # next decision after a charge mode change acts at once
        self._recalc = True            # recompute PV power even without a fresh sample
        self._first = True
        self._was_3phase = False
        self._data_ok = False
        self._surplus_w = 0            # latest fast surplus (PV mode, fresh samples)
        self._deficit_ms = 0           # running switch-off wait, in ms at full depth
        self._excess_ms = 0            # running switch-on wait, in ms at full depth
        self._early_ms = _EARLY_CAP_MS  # token bucket of early decisions (ms of refill time)
        self._wait_ms = 0              # age of the running switch-off wait (deficit integration)
        self._led_ev = 0               # grid-share ledger: energy charged (1/4 Wh, decaying)
        self._led_grid = 0             # ... of it from the grid (1/4 Wh, decaying)
        self._led_ev_rem = 0           # remainders below one unit, W x ms
        self._led_grid_rem = 0
        self._led_decay_ms = 0         # time since the last decay
        self._led_tok_ms = _LEDGER_REFILL_MS  # the ledger's token (full at _LEDGER_REFILL_MS)
        self._phase_ms = _PHASE_CAP_MS  # token bucket of 1p->3p switches (ms of refill time)
        self._hold_ms = 0              # how long a 3p->1p switch has been held (no token)
        self._smooth_w = 0             # the fast surplus averaged over ~_SMOOTH_MS (W)
        self._peak_w = 0               # decaying peak of _smooth_w (W)
        self._peak_acc_ms = 0          # time not yet taken off the peak
        self._sudden = False           # the running hold was judged a sudden dip (extended)
        self._down_ms = 0              # running 3p->1p wait, in ms at full depth
        self._phase_hold = False       # holding 3p: the minimum power is _hold_min_w
        self._hold_min_w = 0
        self._down_full_w = 1
        self._sudden_drop_w = 1
        self._phase_wait = False       # a 1p->3p switch waits for a token
        self.configure({}, {}, {})

    # ---- configuration (may allocate; on config change only) ----
    def configure(self, pm_cfg, debug_cfg, limits):
        g = pm_cfg.get
        self.phase_switching_mode = _clamp(int(g("phase_switching_mode", PHASES_1)), 0, 4)
        self.excess_charging_enable = bool(g("excess_charging_enable", False))
        self.target_power_from_grid = _clamp(int(g("target_power_from_grid", 0)), -_P_LIMIT_W, _P_LIMIT_W)
        self.guaranteed_power = _clamp(int(g("guaranteed_power", 0)), 0, _P_LIMIT_W)
        self.cloud_filter_mode = _clamp(int(g("cloud_filter_mode", 0)), 0, 3)
        s = int(g("meter_slot_grid_power", SLOT_NONE))
        self.meter_slot_grid_power = s if 0 <= s < _SLOTS else SLOT_NONE
        s = int(g("meter_slot_battery_power", SLOT_NONE))
        self.meter_slot_battery_power = s if 0 <= s < _SLOTS else SLOT_NONE
        self.battery_mode = 1 if int(g("battery_mode", 0)) == 1 else 0
        self.battery_inverted = bool(g("battery_inverted", False))
        self.battery_deadzone = _clamp(int(g("battery_deadzone", 0)), 0, _P_LIMIT_W)

        h = int(debug_cfg.get("hysteresis_time", _HYST_DEFAULT_S))
        self.hysteresis_ms = _clamp(h, _HYST_MIN_S, _HYST_MAX_S) * 1000

        g = limits.get
        self.max_current_ma = _clamp(int(g("max_current_ma", 0)), 0, _I_LIMIT_MA)
        self.min_current_1p_ma = _clamp(int(g("min_current_1p_ma", _MIN_CURRENT_DEFAULT_MA)), 0, _I_LIMIT_MA)
        self.min_current_3p_ma = _clamp(int(g("min_current_3p_ma", _MIN_CURRENT_DEFAULT_MA)), 0, _I_LIMIT_MA)
        self.contactor_installed = bool(g("contactor_installed", False))
        self.charger_count = int(g("charger_count", 0))
        self.stale_ms = _clamp(int(g("stale_ms", _STALE_MS)), 1000, 3600000)

        self._scale(self._scale_v)   # the last measured voltage (nominal until one is known)

        m = self.phase_switching_mode
        needs_contactor = m == PHASES_AUTO or m == PHASES_EXTERNAL or m == PHASES_PV1_FAST3
        self._can_1p = m == PHASES_1 or (needs_contactor and self.contactor_installed)
        flags = 0
        if needs_contactor and not self.contactor_installed:
            flags |= CFG_ERR_PHASE_SWITCHING
        if self.max_current_ma == 0:
            flags |= CFG_ERR_MAX_CURRENT
        if self.charger_count <= 0:
            flags |= CFG_ERR_NO_CHARGERS
        if self.excess_charging_enable and self.meter_slot_grid_power == SLOT_NONE:
            flags |= CFG_ERR_NO_METER
        self.config_error_flags = flags

        self._filter.set_window(window_s(self.cloud_filter_mode))
        # A shorter hysteresis applies to running blocks too.
        if self.on_state_change_delay > self.hysteresis_ms:
            self.on_state_change_delay = self.hysteresis_ms
        if self.phase_state_change_delay > self.hysteresis_ms:
            self.phase_state_change_delay = self.hysteresis_ms
        if self.hysteresis_ms <= self._uptime_ms:
            self.uptime_past_hysteresis = True
        self._recalc = True

    def _scale(self, v):
        # The powers of the minimum and maximum currents at v volts per phase (no allocation:
        # small ints only; step() calls this once the measured voltage moved by _V_RESCALE). At
        # the nominal 230 V these are the spec's example numbers; at a measured 240 V the car's
        # 6 A draw 1440 W, and a switch-off decided at 1380 W would hold it on importing up to
        # 60 W (measured: docs/benchmark.md, finding 7 "Thresholds at the measured voltage").
        self._scale_v = v
        max_1p_w = self._max_1p_w = v * self.max_current_ma // 1000
        min_3p_w = 3 * v * self.min_current_3p_ma // 1000
        # At least 1 W: with a (nonsensical) minimum current of 0, no power must still mean off.
        self._min_1p_w = max(v * self.min_current_1p_ma // 1000, 1)
        self._min_3p_w = max(min_3p_w, 1)
        # Held on 3p (no phase token): charge while at most half the 1p minimum comes from the grid.
        self._hold_min_w = max(self._min_3p_w - self._min_1p_w // 2, self._min_1p_w)
        # Phase budget (_decide_phase): full depth of an early switch down (the gap between the 3p
        # and the 1p minimum), and the drop below the recent peak that makes a dip sudden.
        gap = self._min_3p_w - self._min_1p_w
        self._down_full_w = max(gap, 1)
        self._sudden_drop_w = max(gap, self._min_1p_w)
        if min_3p_w > max_1p_w:
            # Dead band between the largest 1p and the smallest 3p power: switch inside it, a
            # quarter from each end, so neither side sits at its limit right after a switch.
            gap = min_3p_w - max_1p_w
            self.threshold_3to1 = max_1p_w + gap // 4
            self.threshold_1to3 = max_1p_w + gap * 3 // 4
        else:
            self.threshold_3to1 = min_3p_w
            self.threshold_1to3 = max_1p_w

    def set_charge_mode(self, mode, user=True):
        # user=False: the mode a (re)start begins with (default_mode), no change by the user.
        mode = _clamp(int(mode), 0, 3)
        if user and mode != self.charge_mode:
            # Only a change is the user's action that may act at once (the reference sets its
            # 'just switched mode' only when the value changed): home automations that write the
            # mode they want every few minutes must not skip every hysteresis.
            self._mode_free = True
            self._recalc = True
        self.charge_mode = mode

    def set_phases_wanted(self, n):
        # Commands act at once (external control is an exception to every hysteresis).
        self.phases_wanted = n if n == 1 or n == 3 else 0

    def external_control_state(self):
        """0 ready, 1 disabled by settings, 2 unavailable, 3 switching (spec)."""
        if self.phase_switching_mode != PHASES_EXTERNAL:
            return 1
        if self.switching or self.switching_state != 0:
            return 3
        if self.blocked_flags or not self.contactor_installed:
            return 2
        return 0

    # ---- the control step (allocation-free) ----
    def step(self, dt_ms):
        if dt_ms < 0:
            dt_ms = 0
        elif dt_ms > _MAX_DT_MS:
            dt_ms = _MAX_DT_MS
        hyst = self.hysteresis_ms
        if not self.uptime_past_hysteresis:
            self._uptime_ms += dt_ms
            if self._uptime_ms >= hyst:
                # (also set when the one free switch after boot is spent)
                self.uptime_past_hysteresis = True
        d = self.on_state_change_delay - dt_ms
        self.on_state_change_delay = d if d > 0 else 0
        d = self.phase_state_change_delay - dt_ms
        self.phase_state_change_delay = d if d > 0 else 0
        self._phase_ms = _refill(self._phase_ms, dt_ms, _PHASE_CAP_MS)

        is3 = self.is_3phase
        if self._first:
            # Start from the contactor's actual state: no decision change, no timer.
            self._first = False
            self.wants_3phase = is3
            self.wants_3phase_last = is3
            self._was_3phase = is3
        flt = self._filter
        if self._was_3phase and not is3:
            # 3p->1p: the history holds the 3p charging power; restart the average.
            flt.reset()
        self._just_switched = self._was_3phase != is3
        self._was_3phase = is3
        switching = self.switching or self.switching_state != 0

        # ---- inputs: staleness, battery, deadzone, filter ----
        grid_w = _clamp(self.grid_w, -_P_LIMIT_W, _P_LIMIT_W)
        self.power_at_meter = grid_w
        blocked = 0
        age = self.grid_age_ms
        if self.meter_slot_grid_power == SLOT_NONE or age < 0 or age > self.stale_ms:
            blocked |= BLOCKED_GRID_STALE
        has_bat = self.meter_slot_battery_power != SLOT_NONE
        if has_bat:
            age = self.battery_age_ms
            if age < 0 or age > self.stale_ms:
                blocked |= BLOCKED_BATTERY_STALE
        data_ok = blocked == 0
        if data_ok and not self._data_ok:
            # Back from stale or missing data: never average old numbers with new ones.
            flt.reset(True)
        self._data_ok = data_ok
        fresh = self.grid_fresh and data_ok
        eff_w = grid_w
        if fresh and has_bat:
            eff_w = self._with_battery(grid_w)
        # The filter averages the surplus (charging - effective grid), not the grid power: a grid
        # average still holding the export from before the car ramped up, plus today's charging
        # power, would count that power twice for up to the window (measured: false 1p->3p
        # switches importing 1.2-1.9 kW, docs/benchmark.md). The surplus does not move when the
        # car does. power_at_meter_filtered stays a grid power: the filtered surplus seen from
        # today's charging power (= the grid average while the chargers' power is steady).
        charging_w = _clamp(self.charging_w, 0, _P_LIMIT_W)
        flt.update(dt_ms, charging_w - eff_w, fresh)
        self.power_at_meter_filtered = charging_w - flt.filtered_w
        if not flt.has_data:
            # A recent age but never a fresh sample (since boot or the last reset): no numbers.
            blocked |= BLOCKED_GRID_STALE

        # ---- available power per charge mode ----
        mode = self.charge_mode
        if (mode == MODE_PV or mode == MODE_MIN_PV) and not self.excess_charging_enable:
            # Without excess charging the spec allows the maximum power (i.e. Fast).
            mode = MODE_FAST
        pv = mode == MODE_PV or mode == MODE_MIN_PV
        if pv and (self.config_error_flags & CFG_ERR_NO_METER):
            blocked |= BLOCKED_CONFIG
        if not pv:
            # Stale meter data only matters for PV control: Fast ignores the meter, and the
            # fuse is DLM's job (it lowers dlm_limit_ma on its own stale phase currents).
            blocked &= ~(BLOCKED_GRID_STALE | BLOCKED_BATTERY_STALE)

        v = self.voltage_v
        if v < _V_MIN or v > _V_MAX:
            v = _NOMINAL_V
        d = v - self._scale_v
        if d >= _V_RESCALE or d <= -_V_RESCALE:
            self._scale(v)
        max_ma = self.max_current_ma
        d = _clamp(self.dlm_limit_ma, 0, _I_LIMIT_MA)
        if d < max_ma:
            max_ma = d
        self.max_current_limited = max_ma
        pmode = self.phase_switching_mode
        if pmode == PHASES_3:
            omin = self._min_3p_w
        elif self._can_1p or not is3:
            # While a switch down is held (no phase token), charging on 3p needs nearly the 3p
            # minimum: below it the on/off rule pauses instead of drawing it from the grid.
            omin = self._hold_min_w if self._phase_hold and is3 else self._min_1p_w
        else:
            omin = self._min_3p_w   # no contactor to switch with, wired 3p
        self.overall_min_power = omin
        # guaranteed_power is raised to overall_min_power (DOMAIN 1).
        g = self.guaranteed_power
        if g < omin:
            g = omin

        if mode == MODE_OFF:
            pa = 0
            paf = 0
            self._track_w = 0
        elif mode == MODE_FAST:
            # Fast: everything the chargers may draw on the phases Fast will run on.
            if pmode == PHASES_1:
                ph = 1
            elif pmode == PHASES_3:
                ph = 3
            elif pmode == PHASES_EXTERNAL:
                ph = 3 if self.phases_wanted == 3 else 1
            elif self.contactor_installed:
                ph = 3
            else:
                ph = 3 if is3 else 1
            pa = v * ph * max_ma // 1000
            paf = pa
            self._track_w = pa
        elif blocked:
            # PV control suspended (stale/missing data or no meter): PV gets nothing; Min+PV
            # keeps its guaranteed power, which needs no meter numbers.
            pa = g if mode == MODE_MIN_PV else 0
            paf = pa
            self._track_w = pa
        elif fresh or self._recalc:
            target = self.target_power_from_grid
            # The chargers' measured power (within 110 % of it, firmware/control/charging_input.py),
            # not their bare allocation: with a loop faster than the cars react, allocation +
            # gain x error winds up (measured: docs/control.md). The error is the (filtered)
            # surplus minus what the chargers draw now: target - grid while the power is steady.
            err = target + flt.fast_w - charging_w
            if fresh:
                self._restless(err)
            pa = charging_w + self._p_adjust(err, charging_w)
            # The current aims below the target by the noise margin; on/off and phase
            # decisions (pa, paf) judge the surplus at the target itself.
            margin = self._restless16 >> 3
            pt = charging_w + self._p_adjust(err - margin, charging_w) if margin else pa
            self._surplus_w = target + flt.fast_w
            paf = charging_w + self._p_adjust(target + flt.filtered_w - charging_w, charging_w)
            if mode == MODE_MIN_PV:
                if pa < g:
                    pa = g
                if paf < g:
                    paf = g
                if pt < g:
                    pt = g
            self._track_w = pt
        else:
            # Act on fresh samples only: between them the chargers' power moves but the grid
            # value does not show it yet.
            pa = self.power_available
            paf = self.power_available_filtered
        self._recalc = False
        self.power_available = pa
        self.power_available_filtered = paf

        if pmode == PHASES_EXTERNAL and self.phases_wanted == 0:
            blocked |= BLOCKED_NO_PHASES
        min_ma = self.min_current_3p_ma if is3 else self.min_current_1p_ma
        if max_ma < min_ma or max_ma == 0:
            blocked |= BLOCKED_DLM if max_ma < self.max_current_ma else BLOCKED_CONFIG
        blocked |= self.blocked_flags
        self.charging_blocked = blocked
        hard = blocked & HARD_BLOCKS
        if pv and mode == MODE_PV:
            hard |= blocked & (BLOCKED_GRID_STALE | BLOCKED_BATTERY_STALE)

        mode_free = self._mode_free
        if hard:
            # Blocked: no decisions on these numbers (the reference skips them too). Off at once;
            # if it was on, both blocks restart, so a short block costs one hysteresis at most.
            if self.is_on_last:
                self.is_on_last = False
                self.wants_on = False
                self.on_state_change_delay = hyst
                self.phase_state_change_delay = hyst
            self._deficit_ms = 0
            self._wait_ms = 0
            self._excess_ms = 0
        else:
            if not switching:
                self._decide_phase(mode, pmode, paf, mode_free, dt_ms)
            self._ledger(dt_ms, charging_w, mode == MODE_PV)
            self._decide_on(paf, pa, omin, mode_free, pmode, dt_ms, mode == MODE_PV)
            if not switching:
                # The exception lasts until both decisions were made: a mode change during a
                # phase switch (no phase decision) or a block (no decision at all) keeps it for
                # the first decision after them, as the reference's flag does.
                self._mode_free = False
        self.phase_state_change_blocked = (self.phase_state_change_delay > 0 or self._phase_wait
                                           or self._phase_hold)
        self.on_state_change_blocked = self.on_state_change_delay > 0

        # ---- current for the charge manager ----
        if not self.is_on_last or switching or hard:
            cur = 0
        else:
            ph = 3 if is3 else 1
            # On while the power is below the minimum (a switch-off waiting for its block, or
            # the fast value dipping): the clamp below holds the minimum current.
            p = self._track_w
            cap_w = v * ph * max_ma // 1000
            if p > cap_w:
                p = cap_w
            elif p < 0:
                p = 0
            # Measured voltage (when given) keeps current x voltage equal to the power meant
            # (no saw-tooth at 235-240 V).
            cur = p * 1000 // (v * ph)
            if cur < min_ma:
                cur = min_ma
            if cur > max_ma:
                cur = max_ma
        self.charge_manager_available_current = cur

    def _with_battery(self, grid_w):
        # Battery: + charging, - discharging (after battery_inverted).
        b = _clamp(self.battery_w, -_P_LIMIT_W, _P_LIMIT_W)
        if self.battery_inverted:
            b = -b
        # The storage keeps the grid near 0 only within a tolerance: treat +-deadzone as 0,
        # shrink larger values toward 0 by it.
        dz = self.battery_deadzone
        if grid_w > dz:
            grid_w -= dz
        elif grid_w < -dz:
            grid_w += dz
        else:
            grid_w = 0
        # Discharge always counts against the excess (never feed the car from the battery);
        # charge power counts as available only when chargers are preferred (battery_mode 0).
        if b < 0 or self.battery_mode == 0:
            grid_w -= b
        return _clamp(grid_w, -_P_LIMIT_W, _P_LIMIT_W)

    def _restless(self, err_w):
        # Noise margin (docs/control.md step 5, measured in docs/benchmark.md finding 8): a 1 Hz
        # meter shows the house restless by tens of watts from one sample to the next. A loop
        # that holds the grid at the target on average imports in every upward wiggle (about
        # 0.4 x their deviation, all day). So the current aims below the target by twice the
        # mean change of the error between samples, averaged over ~16 samples. A change counts
        # at most twice that mean plus _NOISE_CAP_W, so a cloud edge or a kettle is not noise.
        last = self._last_err_w
        self._last_err_w = err_w
        if last is None:
            return
        d = err_w - last
        if d < 0:
            d = -d
        r = self._restless16
        cap = (r >> 3) + _NOISE_CAP_W
        if d > cap:
            d = cap
        self._restless16 = r + d - (r >> 4)

    def _p_adjust(self, err_w, charging_w):
        # Adaptive P gain as n/8: 8/8 while off or nothing charges (so the switch-on threshold is
        # judged on the full excess), else 4/8 below 1000 W error, 6/8 below 1500 W, 7/8 above
        # (some cars only move in ~1.5 kW steps).
        if not self.is_on_last or charging_w < _IDLE_W or self._mode_free:
            # (Right after a mode change the chargers' power is the old mode's, e.g. Fast's
            # 11 kW, not an operating point of this controller: judge the surplus itself.)
            return err_w
        a = err_w if err_w >= 0 else -err_w
        if a < 1000:
            return err_w * 4 // 8
        if a < 1500:
            return err_w * 6 // 8
        return err_w * 7 // 8

    def _decide_phase(self, mode, pmode, paf, mode_free, dt_ms):
        cur3 = self.wants_3phase
        auto_pv = False
        if pmode == PHASES_1:
            d3 = False
        elif pmode == PHASES_3:
            d3 = True
        elif pmode == PHASES_EXTERNAL:
            d3 = cur3 if self.phases_wanted == 0 else self.phases_wanted == 3
        elif not self.contactor_installed:
            d3 = self.is_3phase   # nothing to switch with
        elif pmode == PHASES_PV1_FAST3:
            d3 = (mode == MODE_FAST) if mode != MODE_OFF else cur3
        elif mode == MODE_FAST:
            d3 = True
        elif mode == MODE_OFF:
            d3 = cur3  # nothing to charge: don't wear the contactor
        elif mode == MODE_MIN_PV and self.guaranteed_power > self._max_1p_w:
            # One phase cannot give the guaranteed power, the 3p minimum can: in the dead band
            # between them (3680..4140 W at 16 A) the PV thresholds alone kept 1p and missed
            # the guarantee. Decided by the config, not the sun: no phase budget.
            d3 = True
        elif cur3:
            d3 = paf >= self.threshold_3to1
            auto_pv = True
        else:
            d3 = paf > self.threshold_1to3
            auto_pv = True
        hyst = self.hysteresis_ms
        if d3 != self.wants_3phase_last:
            # A changed decision starts the block; it acts only if it holds that long.
            self.wants_3phase_last = d3
            self.phase_state_change_delay = hyst
        # Phase budget (automatic switching on PV power only; the bucket fills in step()).
        s = self._surplus_w
        if auto_pv:
            # Cloud or evening? A ~1 min average of the surplus (k/256 of the difference a step:
            # |diff| <= 1e6 x 256 < 2**30) and its peak, falling 3 kW/h.
            e = self._smooth_w
            k = dt_ms * 256 // _SMOOTH_MS
            e += _clamp(s - e, -_P_LIMIT_W, _P_LIMIT_W) * (k if k < 256 else 256) // 256
            self._smooth_w = e
            t = self._peak_acc_ms + dt_ms
            dec = t // _PEAK_MS_PER_W
            self._peak_acc_ms = t - dec * _PEAK_MS_PER_W
            p = self._peak_w - dec
            self._peak_w = p if p > e else e
        else:
            self._smooth_w = s
            self._peak_w = s
            self._peak_acc_ms = 0
        token = self._phase_ms >= _PHASE_REFILL_MS
        down = auto_pv and cur3 and not d3
        held = down and mode == MODE_PV and not token
        if held:
            t = self._hold_ms + dt_ms
            lim = hyst * _PHASE_HOLD_HYST
            if self._hold_ms < lim <= t:
                # Judged once, when the plain hold runs out: a sudden dip is held longer.
                self._sudden = self._peak_w - self._smooth_w >= self._sudden_drop_w
            if self._sudden:
                lim = hyst * _PHASE_HOLD_LONG_HYST
            self._hold_ms = t if t < lim else lim
            held = t < lim
        else:
            self._hold_ms = 0
            self._sudden = False
        self._phase_hold = held
        self._phase_wait = auto_pv and d3 and not cur3 and not token and not mode_free
        early = False
        if down and token and self.is_on_last:
            # Early switch down by depth while charging (the import it stops): the deficit below
            # the 3p minimum, up to the gap between the 3p and the 1p minimum (full depth),
            # integrated over the wait.
            t = self._down_ms + self._depth_ms(dt_ms, self._min_3p_w - s, self._down_full_w)
            self._down_ms = t if t < hyst else hyst
            early = t >= hyst * _STOP_DEPTH_16 // 16
        else:
            self._down_ms = 0
        if d3 == cur3 or held or self._phase_wait:
            return
        act = False
        if pmode != PHASES_AUTO or self.phase_state_change_delay == 0 or early:
            # Only automatic switching follows the sun; fixed modes, PV1/Fast3 (decided by the
            # charge mode) and external control change by a user action or command: at once.
            act = True
        elif (not self.is_on_last and self.on_state_change_delay == 0
              and (self.phase_state_change_delay <= hyst // 2 or not self.uptime_past_hysteresis)):
            # While off (and not just switched off) half the block is enough: nothing flows
            # through the contactor, but a flickering decision must not make it chatter. In the
            # start-up period at once, without spending the free switch: switching on (the
            # free switch) then follows on the right phases.
            act = True
        elif not self.uptime_past_hysteresis:
            # The one free switch after boot (shared with on/off).
            self.uptime_past_hysteresis = True
            act = True
        elif mode_free:
            act = True
        if act:
            if auto_pv and d3 and token:
                # (A charge mode change may switch up without a token: a user action.)
                self._phase_ms -= _PHASE_REFILL_MS
            self.wants_3phase = d3
            self._down_ms = 0
            if early:
                self.phase_state_change_delay = 0

    def _depth_ms(self, dt_ms, d, omin):
        # dt_ms weighted by d / omin (d clamped to 0..omin), in 1/256 steps: at most
        # 3.6e6 x 256 < 2**30 (dt_ms <= _MAX_DT_MS; omin <= 3 x 270 V x 1000 A, x 256 < 2**28).
        if d <= 0:
            return 0
        if d > omin:
            d = omin
        return dt_ms * (d * _DEPTH_ONE // omin) // _DEPTH_ONE

    def _ledger(self, dt_ms, charging_w, pv):
        # Grid-share ledger (see _LEDGER_SHARE_PM). dt_ms <= _MAX_DT_MS: at most one decay step
        # per call, which is enough (a stalled loop saw nothing to forget in detail).
        d = self._led_decay_ms + dt_ms
        if d >= _LEDGER_DECAY_MS:
            d = 0
            self._led_ev = self._led_ev * 7 // 8
            self._led_grid = self._led_grid * 7 // 8
        self._led_decay_ms = d
        self._led_tok_ms = _refill(self._led_tok_ms, dt_ms, _LEDGER_REFILL_MS)
        if not pv or not self.is_on_last or charging_w < _IDLE_W:
            return
        if dt_ms > 1000:
            dt_ms = 1000               # w x dt <= 1e6 x 1000 < 2**30
        w = charging_w if charging_w < _LEDGER_MAX_W else _LEDGER_MAX_W
        r = self._led_ev_rem + w * dt_ms
        e = self._led_ev + r // _LEDGER_UNIT
        self._led_ev = e if e < _LEDGER_MAX else _LEDGER_MAX
        self._led_ev_rem = r % _LEDGER_UNIT
        # From the grid: what the chargers draw above the fast surplus (the surplus includes
        # target_power_from_grid, so an import the user allows does not count).
        g = w - self._surplus_w
        if g > 0:
            if g > w:
                g = w
            r = self._led_grid_rem + g * dt_ms
            e = self._led_grid + r // _LEDGER_UNIT
            self._led_grid = e if e < _LEDGER_MAX else _LEDGER_MAX
            self._led_grid_rem = r % _LEDGER_UNIT

    def _decide_on(self, paf, pa, omin, mode_free, pmode, dt_ms, pv):
        # The decision (and its block) follows the filtered power; the fast value must agree at
        # the moment of acting: on needs both >= minimum, off needs both below it.
        want = paf >= omin
        if want != self.wants_on_last:
            self.wants_on_last = want
            self.on_state_change_delay = self.hysteresis_ms
        on = self.is_on_last
        self._early_ms = _refill(self._early_ms, dt_ms, _EARLY_CAP_MS)
        # Early decision (PV mode only): how deep below / above the minimum the wait has been.
        hyst = self.hysteresis_ms
        early = False
        ledger = False
        s = self._surplus_w
        if not pv:
            self._deficit_ms = 0
            self._wait_ms = 0
            self._excess_ms = 0
        elif on:
            self._excess_ms = 0
            if want or s >= omin:
                self._deficit_ms = 0
                self._wait_ms = 0
            else:
                d = self._deficit_ms + self._depth_ms(dt_ms, omin - s, omin)
                self._deficit_ms = d if d < hyst else hyst
                w = self._wait_ms + dt_ms
                self._wait_ms = w if w < hyst else hyst
                early = d >= hyst * _STOP_DEPTH_16 // 16
                if early and self._early_ms < _EARLY_REFILL_MS:
                    # No early token: the ledger's, for a deep dip while the share is high.
                    early = False
                    ledger = (w <= hyst // 2 and self._led_tok_ms >= _LEDGER_REFILL_MS
                              and self._led_grid > self._led_ev * _LEDGER_SHARE_PM // 1000)
        else:
            self._deficit_ms = 0
            self._wait_ms = 0
            if not want:
                self._excess_ms = 0
            else:
                d = self._excess_ms + self._depth_ms(dt_ms, s - omin, omin)
                self._excess_ms = d if d < hyst else hyst
                early = d >= hyst * _START_DEPTH_16 // 16
        if early and self._early_ms < _EARLY_REFILL_MS:
            early = False
        if on:
            if pa >= omin:
                want = True
        elif pa < omin:
            want = False
        if want != on:
            if pmode == PHASES_EXTERNAL or self.on_state_change_delay == 0 or mode_free:
                on = want
            elif early or ledger:
                # Deep enough for long enough: act now (the block has done its job), spend a token
                # (a stop without an early token: the ledger's).
                on = want
                if early:
                    self._early_ms -= _EARLY_REFILL_MS
                else:
                    self._led_tok_ms = 0
                self.on_state_change_delay = 0
                self._deficit_ms = 0
                self._wait_ms = 0
                self._excess_ms = 0
            elif not self.uptime_past_hysteresis:
                # The one free switch after boot (shared with phase switching).
                self.uptime_past_hysteresis = True
                on = want
            elif self._just_switched and self.on_state_change_delay <= self.hysteresis_ms // 2:
                # Right after a phase switch half the block is enough (reference: opportunistic).
                on = want
            # else: blocked; while on, the current is held at the minimum
            self.is_on_last = on
            self.wants_on = on

    # ---- API ----
    def low_level_state(self):
        return {
            "power_at_meter": self.power_at_meter,
            "power_at_meter_filtered": self.power_at_meter_filtered,
            "power_available": self.power_available,
            "power_available_filtered": self.power_available_filtered,
            "overall_min_power": self.overall_min_power,
            "threshold_3to1": self.threshold_3to1,
            "threshold_1to3": self.threshold_1to3,
            "charge_manager_available_current": self.charge_manager_available_current,
            "charge_manager_allocated_current": self.charge_manager_allocated_current,
            "max_current_limited": self.max_current_limited,
            "uptime_past_hysteresis": self.uptime_past_hysteresis,
            "is_3phase": self.is_3phase,
            "wants_3phase": self.wants_3phase,
            "wants_3phase_last": self.wants_3phase_last,
            "is_on_last": self.is_on_last,
            "wants_on_last": self.wants_on_last,
            "phase_state_change_blocked": self.phase_state_change_blocked,
            "phase_state_change_delay": self.phase_state_change_delay,
            "on_state_change_blocked": self.on_state_change_blocked,
            "on_state_change_delay": self.on_state_change_delay,
            "charging_blocked": self.charging_blocked,
            "switching_state": self.switching_state if self.switching_state else (
                1 if self.switching else 0),
        }
