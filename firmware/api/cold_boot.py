# Building the core's objects at boot: the meter slots and power_manager/* (configs, command and
# state objects, their wiring to the control step). Run through cold("boot", "install_...", app)
# (firmware/api/cold.py): imported for the call and dropped afterwards.
from firmware.api.config import ConfigObject
from firmware.api import cold as schemas   # the schemas stay there
from firmware.api import power_manager_api as pm
from firmware.meters import slots as ms


def _config(name, fields_name, store, check=None, cls=ConfigObject):
    """A config object whose schema stays in cold.py (its `fields` is the schema's name)."""
    obj = cls(name, (), store, check)
    obj.fields = fields_name
    obj.values = schemas._defaults(getattr(schemas, fields_name))
    obj.load()
    return obj


def install_slots(app):
    """The 7 meter slots with their config/values/state/update objects."""
    app.slots = []
    reg = app.registry
    for i in range(ms.SLOT_COUNT):
        slot = ms.MeterSlot(i)
        cfg = slot.cfg = _config("meters/%d/config" % i, "SLOT_FIELDS", app.store,
                                 ms.check_slot_config)
        slot.clock = app.clock
        slot.configured(cfg)
        cfg.subscribe(slot.configured)
        app.slots.append(slot)
        app.configs[cfg.name] = cfg
        reg.add(cfg.name, cfg)
        reg.add("meters/%d/values" % i, (ms.values_dict, slot))
        reg.add("meters/%d/state" % i, slot)        # the slot is its own state object
        reg.add("meters/%d/update" % i, (ms.update_shape, slot, ms.api_update))


def install_power_manager(app):
    """power_manager/*: the configs, the command and state objects, and their wiring to the
    control step."""
    reg, p, configs, store = app.registry, app.pm, app.configs, app.store
    reconfigure = app.reconfigure      # one bound method (32 B) for all ten listeners
    cfg = _config("power_manager/config", "PM_FIELDS", store, "pm_config_error", pm.PmConfig)
    dlm = cfg.dlm = _config("power_manager/dynamic_load_config", "DLM_FIELDS", store,
                            "dlm_config_error")
    debug = _config("power_manager/debug_config", "DEBUG_FIELDS", store)
    for obj in (cfg, dlm, debug):
        configs[obj.name] = obj
        reg.add(obj.name, obj)
        obj.subscribe(reconfigure)
    cm = app.charge_mode = pm.ChargeMode(cfg, p.set_charge_mode)
    app.external_control = pm.ExternalControl(p)
    reg.add("power_manager/charge_mode", cm)
    reg.add("power_manager/external_control", app.external_control)
    reg.add("power_manager/state", (pm.state_dict, app))
    # The control step's internals, for debugging.
    reg.add("power_manager/low_level_state", (pm.low_level_state, app))
    cfg.subscribe(cm.config_changed)
    dlm.subscribe(cfg.dlm_changed)
    for slot in app.slots:
        slot.cfg.subscribe(reconfigure)
    reconfigure()
    # The mode after a restart is no user's mode change: the first decisions with data take
    # the one free switch after boot, as in the reference (a mode change's exception would
    # last through the first seconds without meter data and add a second one).
    p.set_charge_mode(cm.mode, False)
