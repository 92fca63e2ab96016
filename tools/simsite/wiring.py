# Plugs the simulated site (tools/simsite/site.py) into the firmware behind the same interfaces the
# real drivers use: a simulated grid (and battery) meter feeding meter slots, a simulated charger,
# and the contactor relay pin read from the board. No branch in firmware/ knows it is simulated.
from tools.simsite.site import Site, GRID_VALUE_IDS, BATTERY_VALUE_IDS
from tools.simsite.profile import Profile
from tools.simsite.battery import Battery
from tools.simsite.noise import Noise
from firmware.meters.slots import TYPE_SIM
from firmware.chargers import manager as charge_manager
from tools.simsite.sim_charger import SimCharger
from tools.simsite.sim_contactor import SimContactor

GRID_SLOT = 3      # where the spec's example config expects the grid meter
BATTERY_SLOT = 4
GRID_NAME = "Simulated grid meter"
METER_PERIOD_MS = 500  # a new meter sample every 500 ms, like a polled RS485 meter


def _seed_config(app):
    """First boot of a fresh SIM_DIR: the grid meter in slot 3, PV charging, automatic 1p/3p."""
    # exists(), not load(): a corrupt file was already reported and replaced by defaults, and
    # must not be overwritten by the seeds (the user may want to look at it).
    if app.store.exists("power_manager/config"):
        return
    app.configs["meters/%d/config" % GRID_SLOT].write(
        {"type": TYPE_SIM, "display_name": GRID_NAME,
         "value_ids": list(GRID_VALUE_IDS)})
    app.configs["power_manager/config"].write(
        {"meter_slot_grid_power": GRID_SLOT, "default_mode": 2, "phase_switching_mode": 0})
    app.configs["power_manager/dynamic_load_config"].write(
        {"meter_slot_grid_currents": GRID_SLOT})
    app.charge_mode.set(2)


def _seed_chargers(app):
    """First boot of a fresh SIM_DIR: one simulated charger and a phase contactor with feedback,
    so every API path (external phase control included) works out of the box."""
    if not app.store.exists("charge_manager/config"):
        app.configs["charge_manager/config"].write(
            {"chargers": [{"name": "sim", "type": "sim", "max_current": 16000}],
             "maximum_available_current": 32000})
    if not app.store.exists("power_manager/contactor_config"):
        app.configs["power_manager/contactor_config"].write(
            {"contactor_installed": True, "relay_pin": "contactor",
             "feedback_pin": "contactor_feedback", "cp_off_time_s": 10,
             "min_switch_interval_s": 10})


BATTERY_NAME = "Simulated home battery"


def _seed_battery(app):
    """With a simulated home battery: its meter in slot 4, the power manager told about it.
    A slot 4 the user configured (any type but none) is left alone."""
    name = "meters/%d/config" % BATTERY_SLOT
    if app.store.exists(name) and app.configs[name]["type"] != 0:
        return
    app.configs["meters/%d/config" % BATTERY_SLOT].write(
        {"type": TYPE_SIM, "display_name": BATTERY_NAME,
         "value_ids": list(BATTERY_VALUE_IDS)})
    app.configs["power_manager/config"].write({"meter_slot_battery_power": BATTERY_SLOT})


def _drop_battery(app):
    """Without SIM_BATTERY in a SIM_DIR that had it: the folder keeps every config, so the
    battery meter would stay configured with nothing feeding it, and its stale data would block
    PV charging for good. Only the simulator's own battery meter is removed."""
    cfg = app.configs["meters/%d/config" % BATTERY_SLOT]
    if cfg["type"] != TYPE_SIM or cfg["display_name"] != BATTERY_NAME:
        return
    cfg.write({"type": 0, "display_name": ""})
    pm = app.configs["power_manager/config"]
    if pm["meter_slot_battery_power"] == BATTERY_SLOT:
        pm.write({"meter_slot_battery_power": 255})


def make_installer(profile_path=None, start_ms=0, battery=False, noise_w=0):
    """start_ms: where in the profile the simulation starts (make sim: 09:00, when the sun is up).
    battery: add a 10 kWh home battery that holds the grid at 0 W (SIM_BATTERY=1).
    noise_w: the house load restless by this many watts from second to second (SIM_NOISE=40)."""
    def install(app):
        profile = Profile.load(profile_path) if profile_path else None
        site = Site(profile=profile, start_ms=start_ms, battery=Battery() if battery else None,
                    load_noise=Noise(noise_w) if noise_w > 0 else None)
        app.sim_site = site
        # The contactor model sits on the board's pins, like the real relay and aux contact.
        contactor = app.sim_contactor = SimContactor(app.board, "contactor", "contactor_feedback")
        sims = []

        def sim_factory(app_, c):
            ch = SimCharger(site.ev, c["name"], c.get("max_current", 16000))
            sims[:] = [ch]
            return ch
        if not hasattr(app, "charger_factories"):
            app.charger_factories = {}
        app.charger_factories["sim"] = sim_factory
        _seed_config(app)
        tasks = list(charge_manager.install(app))
        _seed_chargers(app)
        if battery:
            _seed_battery(app)
        else:
            _drop_battery(app)

        grid_cfg_name = "meters/%d/config" % GRID_SLOT
        battery_cfg_name = "meters/%d/config" % BATTERY_SLOT

        def tick(dt, now):
            """One site step: contactor, EV behind the charger's pilot, grid meter sample."""
            contactor.step(dt)
            offered = sims[0].offered_ma() if sims else 0
            site.step(dt, offered, contactor.phases())
            if app.configs[grid_cfg_name]["type"] == TYPE_SIM:
                grid = app.slots[GRID_SLOT]
                grid.set_value_ids(GRID_VALUE_IDS)
                grid.update(site.grid_values(), now)
            if battery and app.configs[battery_cfg_name]["type"] == TYPE_SIM:
                slot = app.slots[BATTERY_SLOT]
                slot.set_value_ids(BATTERY_VALUE_IDS)
                slot.update(site.battery_values(), now)
        app.sim_tick = tick   # tests drive the site step by step

        async def run_site():
            import time
            clock = app.clock
            last = clock.ticks_ms()
            while True:
                await clock.sleep_ms(METER_PERIOD_MS)
                now = clock.ticks_ms()
                tick(time.ticks_diff(now, last), now)
                last = now
        tasks.append(run_site())
        return tasks
    return install
