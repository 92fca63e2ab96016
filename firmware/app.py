# Composition root: builds the stores, config objects, meter slots, power manager and the
# subsystems, then runs their tasks. Hardware comes in through `board`, time through `clock`, so
# the same code runs on the ESP32, on the Unix port under `make sim`, and in tests.
import asyncio

# Imported first: compiling the HTTP server from source needs large blocks, which a heap
# already filled by the app's objects may no longer have (the sim and tests run from source).
from firmware.api.http import serve as serve_http
from firmware.api.registry import Registry
from firmware.api.store import Store
from firmware.api.config import cold
from firmware.control.power_manager import PowerManager
from firmware.control_task import ControlTask
from firmware.meters.slots import install_slots, TYPE_NONE, CURRENT_L1, CURRENT_L2, CURRENT_L3
from firmware.api.power_manager_api import NO_METER

# Subsystems every board gets, in order: modules whose install(app) returns coroutines to run.
# (The display reads app.wifi, so the network comes first.)
BOARD_SUBSYSTEMS = (
    "firmware.net.wifi",              # Wi-Fi station, AP fallback, /setup page
    "firmware.supervisor.watchdog",   # hardware WDT fed while the control loop beats
    "firmware.ui.display",            # OLED status pages (a PBM file on the Unix port)
    "firmware.meters.rs485",          # RS485 meters on the Modbus bus (docs/meters.md)
    "firmware.chargers.manager",      # chargers, contactor, charge manager, DLM (docs/chargers.md)
    "firmware.supervisor.memory",     # system/memory: heap use, a collection every second
    "firmware.mqtt.service",          # MQTT + Home Assistant discovery: last, it bridges every object
)

def _system_state(app):
    """system/state: uptime, loop period and config files that could not be loaded."""
    ct = app.control
    errors = [c.load_error for c in app.configs.values() if c.load_error]
    pin_map_error = getattr(app.board, "pin_map_error", None)   # board.json (ESP32)
    if pin_map_error:
        errors.append(pin_map_error)
    return {"uptime_ms": ct.uptime_s * 1000 + ct.uptime_rest_ms,  # (a bigint after 12 days)
            "config_load_errors": errors,
            "period_ms": ct.period_ms, "max_period_ms": ct.max_period_ms, "steps": ct.steps}


class App:
    def __init__(self, board, clock, subsystems=()):
        self.board = board
        self.clock = clock
        self.store = Store(board.fs_dir)
        self.registry = Registry()
        self.configs = {}
        self.chargers = []        # charger objects (docs/architecture.md), filled by subsystems
        self.phase_control = None  # phase switch sequence + contactor, when one is installed
        self.tasks = []
        self.http_routes = []     # extra (url, methods, handler) for the HTTP server (/setup)
        # Charger limits the power manager plans with; the charge manager subsystem keeps them
        # in step with charge_manager/config.
        self.charge_limits = {"max_current_ma": 16000, "min_current_1p_ma": 6000,
                              "min_current_3p_ma": 6000, "contactor_installed": False,
                              "charger_count": 0}
        install_slots(self)
        self.pm = PowerManager()
        # power_manager/* objects (one-off code: firmware/api/cold_boot.py)
        cold("boot", "install_power_manager", self)
        self.control = ControlTask(self)
        self.registry.add("system/state", (_system_state, self))
        for install in subsystems:
            self.tasks.extend(install(self) or ())
        for name in BOARD_SUBSYSTEMS:
            self.tasks.extend(__import__(name, None, None, ["install"]).install(self) or ())

    def _add_config(self, cfg):
        cfg.load()
        self.configs[cfg.name] = cfg
        return cfg

    def reconfigure(self, _changed=None):
        """Hand the current configuration to the control step (allocates; config changes only)."""
        self.pm.configure(self.configs["power_manager/config"].values,
                          self.configs["power_manager/debug_config"].values,
                          self.charge_limits)

    def config_error_flags(self):
        # The power manager knows bits 1, 2, 4 and 8 from its configuration; only the app sees
        # the meter slots: a grid slot that holds no meter (8), DLM without phase currents (16).
        flags = self.pm.config_error_flags
        cm = self.configs.get("charge_manager/config")
        if flags & 4 and cm is not None and cm["maximum_available_current"]:
            # No chargers sum to 0 A, but bit 2 says the maximum total current is not configured
            # (the spec; the reference checks that setting alone): only bit 4 is true then.
            flags &= ~2
        cfg = self.configs["power_manager/config"]
        slot = cfg["meter_slot_grid_power"]
        if cfg["excess_charging_enable"] and slot != NO_METER \
                and self.slots[slot].cfg["type"] == TYPE_NONE:
            flags |= 8
        dlm = self.configs["power_manager/dynamic_load_config"]
        if dlm["enabled"]:
            ids = self.slots[dlm["meter_slot_grid_currents"]].value_ids
            if not (CURRENT_L1 in ids and CURRENT_L2 in ids and CURRENT_L3 in ids):
                flags |= 16
        return flags

    def distribute(self, now_ms, dt_ms):
        """Hand the power manager's available current to the chargers. Without a charge manager
        subsystem the one charger with a vehicle gets it all."""
        pm = self.pm
        available_ma = pm.charge_manager_available_current
        allocated_ma = 0
        for ch in self.chargers:
            give_ma = available_ma if (ch.reachable and ch.vehicle_connected
                                       and allocated_ma == 0) else 0
            ch.set_current(give_ma)
            allocated_ma += give_ma
        pm.charge_manager_allocated_current = allocated_ma

    async def run(self, host="0.0.0.0", port=80):
        tasks = [asyncio.create_task(self.control.run())]
        for coro in self.tasks:
            tasks.append(asyncio.create_task(coro))
        print("api: serving on http://%s:%d" % (host, port))
        await serve_http(self.registry, self.http_routes, host, port)
