# Plugs the simulated site (tools/simsite/site.py) into the firmware behind the same interfaces the
# real drivers use: a simulated grid (and battery) meter feeding meter slots, a simulated charger,
# and the contactor relay pin read from the board. No branch in firmware/ knows it is simulated.
from tools.simsite.site import Site, GRID_VALUE_IDS, BATTERY_VALUE_IDS
from tools.simsite.profile import Profile
from firmware.meters.slots import TYPE_SIM

GRID_SLOT = 3      # where the spec's example config expects the grid meter
BATTERY_SLOT = 4
METER_PERIOD_MS = 500  # a new meter sample every 500 ms, like a polled RS485 meter


class SimCharger:
    """The charger interface (docs/architecture.md) over the simulated EV."""

    supports_cp_disconnect = True

    def __init__(self, site):
        self.site = site
        self.name = "sim"
        self.limit_ma = 0
        self.cp_disconnected = False
        self.reachable = True
        self.vehicle_connected = True
        self.charging = False
        self.phase_currents_ma = site.ev.phase_currents_ma
        self.last_seen_ms = None

    def set_current(self, limit_ma):
        self.limit_ma = limit_ma

    def set_cp_disconnect(self, disconnect):
        self.cp_disconnected = disconnect

    def offered_ma(self):
        return 0 if self.cp_disconnected else self.limit_ma


def _seed_config(app):
    """First boot of a fresh SIM_DIR: a site with the grid meter in slot 3 and PV charging."""
    if app.store.load("power_manager/config") is not None:
        return
    app.configs["meters/%d/config" % GRID_SLOT].write(
        {"type": TYPE_SIM, "display_name": "Simulated grid meter",
         "value_ids": list(GRID_VALUE_IDS)})
    app.configs["power_manager/config"].write(
        {"meter_slot_grid_power": GRID_SLOT, "default_mode": 2})
    app.configs["power_manager/dynamic_load_config"].write(
        {"meter_slot_grid_currents": GRID_SLOT})
    app.charge_mode.set(2)


def make_installer(profile_path=None):
    def install(app):
        profile = Profile.load(profile_path) if profile_path else None
        site = Site(profile=profile)
        charger = SimCharger(site)
        app.chargers.append(charger)
        _seed_config(app)
        app.sim_site = site

        async def run_site():
            clock = app.clock
            grid = app.slots[GRID_SLOT]
            last = clock.ticks_ms()
            import time
            while True:
                await clock.sleep_ms(METER_PERIOD_MS)
                now = clock.ticks_ms()
                dt = time.ticks_diff(now, last)
                last = now
                phases = 3 if app.pm.is_3phase else 1
                site.step(dt, charger.offered_ma(), phases)
                charger.charging = site.ev.charging
                charger.last_seen_ms = now
                if app.configs[grid_cfg_name]["type"] == TYPE_SIM:
                    grid.set_value_ids(GRID_VALUE_IDS)
                    grid.update(site.grid_values(), now)
        grid_cfg_name = "meters/%d/config" % GRID_SLOT
        return (run_site(),)
    return install
