# The control task: every period it copies the meter slots into the power manager's inputs, runs
# the pure control step and hands the result to the chargers. No awaits between reading and
# acting, no I/O: chargers and meters own their I/O in their own tasks.
import time

from micropython import const

from firmware.api.power_manager_api import NO_METER
from firmware.meters.slots import POWER, VOLTAGE_L1
from firmware.control.charging_input import control_charging_w

PERIOD_MS = 250  # the reference's loop period (DOMAIN 1)
_STALE_AGE_MS = const(1 << 29)  # age handed to the control step for a slot past its stale timeout
_NOMINAL_V = const(230)


def _older(age_ms, dt_ms):
    """An age grown by one period, held at _STALE_AGE_MS (a small int on the ESP32)."""
    age_ms += dt_ms
    return age_ms if age_ms < _STALE_AGE_MS else _STALE_AGE_MS


class ControlTask:
    def __init__(self, app):
        self.app = app
        self.pm = app.pm
        self._last_ms = None
        self._grid_count = -1
        # How long the newest readings have carried no valid total power (see step()).
        self._grid_invalid_ms = 0
        self._battery_invalid_ms = 0
        self.period_ms = 0        # the last measured loop period, for the API and benchmarks
        self.max_period_ms = 0
        self.heartbeat_ms = None  # the watchdog feeds the hardware WDT only while this moves
        self.steps = 0
        # Uptime for system/state, summed from the periods: a ticks stamp taken at boot reads
        # negative after 6.2 days. Whole seconds plus the ms since: small ints for 34 years.
        self.uptime_s = 0
        self.uptime_rest_ms = 0

    def step(self, now_ms, dt_ms):
        """One control period: slots -> power manager inputs, the control step, chargers."""
        app = self.app
        pm = self.pm
        slots = app.slots
        cfg = app.configs["power_manager/config"]
        index = cfg["meter_slot_grid_power"]
        grid = None if index == NO_METER else slots[index]
        if grid is None or POWER not in grid.value_ids:
            pm.grid_w = 0
            pm.grid_fresh = False
            pm.grid_age_ms = _STALE_AGE_MS
            pm.voltage_v = 0
        else:
            # A reading whose total power the meter marked invalid (NaN, ABB's 0x7FFFFFFF: the
            # slot holds None) is no sample: the last valid power holds and ages as if the
            # meter had fallen silent (PV control is suspended after stale_ms), instead of
            # reading as 0 W, "balanced", for as long as the meter keeps answering so.
            v = grid.get(POWER)
            age = _STALE_AGE_MS if grid.is_stale(now_ms) else grid.age_ms(now_ms)
            if v is None:
                self._grid_invalid_ms = _older(self._grid_invalid_ms, dt_ms)
                pm.grid_fresh = False
            else:
                self._grid_invalid_ms = 0
                pm.grid_w = int(v)
                pm.grid_fresh = grid.update_count != self._grid_count
            self._grid_count = grid.update_count
            pm.grid_age_ms = age if age > self._grid_invalid_ms else self._grid_invalid_ms
            v = grid.get(VOLTAGE_L1)
            pm.voltage_v = 0 if v is None else int(v)
        index = cfg["meter_slot_battery_power"]
        battery = None if index == NO_METER else slots[index]
        if battery is None or POWER not in battery.value_ids:
            pm.battery_w = 0
            pm.battery_age_ms = 0 if battery is None else _STALE_AGE_MS
        else:
            v = battery.get(POWER)   # invalid: as for the grid power above
            age = _STALE_AGE_MS if battery.is_stale(now_ms) else battery.age_ms(now_ms)
            if v is None:
                self._battery_invalid_ms = _older(self._battery_invalid_ms, dt_ms)
            else:
                self._battery_invalid_ms = 0
                pm.battery_w = int(v)
            pm.battery_age_ms = age if age > self._battery_invalid_ms \
                else self._battery_invalid_ms
        # What the chargers draw now, from their own measurements.
        volts = pm.voltage_v or _NOMINAL_V
        charging_ma = 0
        for ch in app.chargers:
            cur = ch.phase_currents_ma
            charging_ma += cur[0] + cur[1] + cur[2]
        # The P step works from the allocated power within 110 % of the measured one (a car
        # drawing a little less than offered would otherwise leave a steady export):
        # firmware/control/charging_input.py, the same rule the benchmark runs.
        pm.charging_w = control_charging_w(charging_ma * volts // 1000,
                                           pm.charge_manager_allocated_current,
                                           3 if pm.is_3phase else 1, volts)
        if app.phase_control is not None:
            app.phase_control.before_step(now_ms, dt_ms)
        pm.step(dt_ms)
        app.distribute(now_ms, dt_ms)
        # One slot a period keeps its stamp within ticks_diff()'s reach (MeterSlot.age_ms): also
        # the slots no control input reads, which only the API, MQTT and the display show.
        slots[self.steps % len(slots)].age_ms(now_ms)
        self.steps += 1
        if dt_ms > 0:
            u = self.uptime_rest_ms + dt_ms
            if u >= 1000:
                self.uptime_s += u // 1000
                u %= 1000
            self.uptime_rest_ms = u

    async def run(self):
        clock = self.app.clock
        while True:
            now = clock.ticks_ms()
            if self._last_ms is None:
                dt = 0
            else:
                dt = time.ticks_diff(now, self._last_ms)
                self.period_ms = dt
                if dt > self.max_period_ms:
                    self.max_period_ms = dt
            self._last_ms = now
            self.step(now, dt)
            self.heartbeat_ms = now
            await clock.sleep_ms(PERIOD_MS)
