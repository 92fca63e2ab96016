# The benchmark's settings: how a job (a dict, JSON between host and MicroPython) becomes a Site
# and a power-manager configuration. Runs under MicroPython and CPython.
#
#   default  230 V, EV 6-16 A on up to 3 phases, automatic 1p/3p with a contactor, PV mode,
#            the firmware's default config, seeded house model where the profile has no
#            base_grid_w, optional home battery (job["battery"]).
#   peer     the peer's published setting (../shared/bench/README.md): single phase, 240 V,
#            6-32 A, house load 0 where the profile has no base_grid_w.
from tools.simsite.battery import Battery
from tools.simsite.ev import EV
from tools.simsite.house import House
from tools.simsite.noise import Noise
from tools.simsite.profile import Profile
from tools.simsite.site import Site

GRID_SLOT = 0
BATTERY_SLOT = 1

# Fallbacks when the firmware's config definitions cannot be imported (spec / DOMAIN 1).
_PM_DEFAULTS = {"phase_switching_mode": 1, "excess_charging_enable": True, "default_mode": 0,
                "meter_slot_grid_power": 0, "meter_slot_battery_power": 255,
                "target_power_from_grid": 0, "guaranteed_power": 1380, "cloud_filter_mode": 0,
                "battery_mode": 0, "battery_inverted": False, "battery_deadzone": 100}
_DEBUG_DEFAULTS = {"hysteresis_time": 240}


def setting_opts(name):
    if name == "peer":
        return {"voltage_v": 240, "min_ma": 6000, "max_ma": 32000, "car_phases": 1,
                "allow_switch": False, "start_phases": 1, "house": False,
                "phase_switching_mode": 1}
    if name == "default":
        return {"voltage_v": 230, "min_ma": 6000, "max_ma": 16000, "car_phases": 3,
                "allow_switch": True, "start_phases": 1, "house": True,
                "phase_switching_mode": 0}
    raise ValueError("unknown setting %r" % name)


def build_site(job):
    """Site for job {"profile": path or "default", "setting": ..., "seed": int,
    "battery": None or {Battery kwargs}, "pv_scale_pct": 100 or the PV's scale in %,
    "load_noise_w": 0 or the house load's 1-s fluctuation in W, "voltage_noise_v": 0 or the
    voltage's in V, "grid_impedance_mohm": 0 or the grid impedance in mOhm}. Returns (site, opts)."""
    opts = setting_opts(job.get("setting", "default"))
    path = job.get("profile") or "default"
    prof = Profile.default_day(loop=False) if path == "default" else Profile.load(path)
    pv_pct = job.get("pv_scale_pct") or 100
    if pv_pct != 100:
        prof.scale_pv(pv_pct)
    seed = job.get("seed", 1)
    house = False
    if opts["house"] and not prof.has_base_grid:
        house = House(seed=seed, duration_s=prof.duration_ms // 1000 + 1)
    ev_kw = {"min_ma": opts["min_ma"], "max_ma": opts["max_ma"], "car_phases": opts["car_phases"],
             "seed": seed}
    ev_kw.update(job.get("ev") or {})   # sensitivity runs: {"draw_min_pct": 100, "delay_ms": 1000}
    ev = EV(**ev_kw)
    bat = job.get("battery")
    battery = Battery(**bat) if bat else None
    noise_w = job.get("load_noise_w") or 0
    noise_v = job.get("voltage_noise_v") or 0
    site = Site(profile=prof, house=house, ev=ev, battery=battery, voltage_v=opts["voltage_v"],
                load_noise=Noise(noise_w, seed) if noise_w else None,
                voltage_noise=Noise(noise_v, seed * 31 + 7) if noise_v else None,
                impedance_mohm=job.get("grid_impedance_mohm") or 0)
    return site, opts


def firmware_defaults():
    """(pm_cfg, debug_cfg) defaults as the firmware ships them, else the spec's."""
    pm = dict(_PM_DEFAULTS)
    dbg = dict(_DEBUG_DEFAULTS)
    try:
        from firmware.api import cold   # the firmware's schemas (firmware/api/cold.py)
        pm.update({f.key: f.default for f in cold.PM_FIELDS})
        dbg.update({f.key: f.default for f in cold.DEBUG_FIELDS})
    except Exception:  # noqa: BLE001 - not landed yet / different shape: keep the fallbacks
        pass
    return pm, dbg


def pm_config(job):
    """(pm_cfg, debug_cfg, limits) for the firmware's PowerManager.configure()."""
    opts = setting_opts(job.get("setting", "default"))
    pm, dbg = firmware_defaults()
    pm["excess_charging_enable"] = True
    pm["meter_slot_grid_power"] = GRID_SLOT
    pm["meter_slot_battery_power"] = BATTERY_SLOT if job.get("battery") else 255
    pm["phase_switching_mode"] = opts["phase_switching_mode"]
    pm.update(job.get("cfg") or {})
    dbg.update(job.get("debug") or {})
    limits = {"max_current_ma": opts["max_ma"], "min_current_1p_ma": opts["min_ma"],
              "min_current_3p_ma": opts["min_ma"], "contactor_installed": opts["allow_switch"],
              "charger_count": 1}
    return pm, dbg, limits
