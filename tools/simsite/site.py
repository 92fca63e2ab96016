# The simulated site: PV + house + EV + optional battery behind one grid meter.
#
#   grid_w = house_w + ev_w + battery_w - pv_w          (+ import / - export; battery + charging)
#
# Where the profile has base_grid_w (measured grid power of the site without the EV, PV already
# in it) that replaces the house model: grid_w = base_grid_w + ev_w + battery_w, and the house
# load shown is base_grid_w + pv_w. Per-phase currents: house load on its phases (measured data:
# spread evenly), PV and battery inverters on all three, the EV on the phases it charges on.
# An optional Noise (tools/simsite/noise.py) adds a second-to-second fluctuation to the house
# load (measured or modelled; none without a house), spread evenly over the phases.
#
# Voltage: the nominal voltage, plus an optional Noise in volts, less the drop the site's own L1
# current makes across the grid's impedance (import lowers it, export raises it; the current of
# the step before). One voltage for all three phases (the L1 one, which the firmware reads).
from tools.simsite.ev import EV
from tools.simsite.house import House
from tools.simsite.profile import Profile

# Value ids of the grid meter slot in the order grid_values() fills them (DOMAIN 5 /
# docs/architecture.md): total power W, L1..L3 current A, L1..L3 voltage V, import/export kWh.
GRID_VALUE_IDS = (74, 14, 18, 22, 1, 2, 3, 209, 211)
# Battery meter slot: power W (+ charging), state of charge %.
BATTERY_VALUE_IDS = (74, 387)


class Site:
    def __init__(self, profile=None, house=None, ev=None, battery=None, voltage_v=230,
                 use_base_grid=True, start_ms=0, load_noise=None, voltage_noise=None,
                 impedance_mohm=0):
        """profile: a Profile (None = the built-in default day, looping).
        house: a House, None = seeded default (seed 1); pass False for no house load.
        use_base_grid: use the profile's base_grid_w where present (else house model + PV).
        load_noise: a Noise added to the house load (W), or None.
        voltage_noise: a Noise added to the voltage (V), or None; impedance_mohm: the grid's
        impedance seen from the meter (mOhm, 0 = a stiff grid)."""
        self.profile = profile if profile is not None else Profile.default_day()
        if house is None:
            house = House(seed=1, duration_s=max(1, self.profile.duration_ms // 1000))
        self.house = house or None
        self.ev = ev if ev is not None else EV()
        self.battery = battery
        self.nominal_v = voltage_v
        self.voltage_v = voltage_v
        self.voltage_noise = voltage_noise
        self.impedance_mohm = impedance_mohm
        self.use_base_grid = use_base_grid
        self.load_noise = load_noise
        self.t_ms = start_ms
        self.pv_w = 0
        self.house_w = 0
        self.base_grid_w = None
        self.battery_w = 0
        self.grid_w = 0
        self.surplus_w = 0                     # pv - house: what an ideal EV could take (no battery)
        self.phase_currents_ma = [0, 0, 0]     # grid per phase, signed (+ import)
        self.import_wms = 0
        self.export_wms = 0
        self._house_phase_w = [0, 0, 0]
        self._grid_values = [0.0] * len(GRID_VALUE_IDS)
        self._battery_values = [0.0, 0.0]

    @property
    def duration_ms(self):
        return self.profile.duration_ms

    def step(self, dt_ms, offered_ma, phases):
        """Advance the site by dt_ms with the wallbox offering offered_ma per phase on `phases`
        (0 = contactor open, 1, 3). Returns grid_w."""
        t = self.t_ms = self.t_ms + dt_ms
        prof = self.profile
        pv = prof.pv_w_at(t)
        base = prof.base_grid_w_at(t) if (self.use_base_grid and prof.has_base_grid) else None
        hp = self._house_phase_w
        if base is not None:
            house = base + pv
            third = house // 3
            hp[0] = house - 2 * third
            hp[1] = third
            hp[2] = third
        elif self.house is not None:
            h = self.house.phase_w_at(t)
            hp[0] = h[0]
            hp[1] = h[1]
            hp[2] = h[2]
            house = h[0] + h[1] + h[2]
        else:
            house = 0
            hp[0] = hp[1] = hp[2] = 0
        if self.load_noise is not None and (base is not None or self.house is not None):
            n = self.load_noise.at(t)
            if house + n < 0 <= house:
                n = -house     # a load does not become a generator
            house += n
            third = n // 3
            hp[0] += n - 2 * third
            hp[1] += third
            hp[2] += third
        self.pv_w = pv
        self.house_w = house
        self.base_grid_w = base
        self.surplus_w = pv - house
        if self.voltage_noise is not None or self.impedance_mohm:
            self.voltage_v = self._voltage(t)
        v = self.voltage_v
        ev = self.ev
        ev_w = ev.step(dt_ms, offered_ma, phases, v)
        grid = house + ev_w - pv
        bat_w = 0
        if self.battery is not None:
            bat_w = self.battery.step(dt_ms, grid)
            grid += bat_w
        self.battery_w = bat_w
        self.grid_w = grid
        # Per phase: house on its phases, PV and battery inverters symmetric, EV on its phases.
        inv = (bat_w - pv) // 3
        evc = ev.phase_currents_ma
        pc = self.phase_currents_ma
        pc[0] = (hp[0] + inv) * 1000 // v + evc[0]
        pc[1] = (hp[1] + inv) * 1000 // v + evc[1]
        pc[2] = (hp[2] + inv) * 1000 // v + evc[2]
        if grid > 0:
            self.import_wms += grid * dt_ms
        else:
            self.export_wms -= grid * dt_ms
        return grid

    def _voltage(self, t_ms):
        v = self.nominal_v
        if self.voltage_noise is not None:
            v += self.voltage_noise.at(t_ms)
        # mOhm x mA = uV, rounded to whole volts as the firmware reads them.
        v -= (self.impedance_mohm * self.phase_currents_ma[0] + 500000) // 1000000
        return 150 if v < 150 else 300 if v > 300 else v

    # -- what the simulated meters report ----------------------------------------------------
    def grid_values(self):
        """Grid meter values in GRID_VALUE_IDS order (floats as a Modbus meter gives them).
        The same list object every call."""
        g = self._grid_values
        pc = self.phase_currents_ma
        g[0] = float(self.grid_w)
        g[1] = pc[0] / 1000
        g[2] = pc[1] / 1000
        g[3] = pc[2] / 1000
        g[4] = g[5] = g[6] = float(self.voltage_v)
        g[7] = self.import_wms / 3600000000
        g[8] = self.export_wms / 3600000000
        return g

    def battery_values(self):
        """Battery meter values in BATTERY_VALUE_IDS order, or None without a battery."""
        b = self.battery
        if b is None:
            return None
        out = self._battery_values
        out[0] = float(b.power_w)
        out[1] = float(b.soc_pct)
        return out
