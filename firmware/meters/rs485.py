# RS485 meters (docs/meters.md), the part installed at start: the model names (meters/N/config
# rejects unknown ones) and a listener on every slot's config. The poller (rs485_poll.py) and the
# Modbus bus are imported when a slot becomes an RS485 meter, at start or on a config write: a
# board without one does not carry their ~15 KB of heap. The configuration (rs485_setup.py), the
# register tables (models.py) and the planner (plan.py) are imported only for a config change.
from firmware import call_once, forget

from firmware.meters.slots import TYPE_RS485

# The models of firmware/meters/models.py (host_tests/test_meters_models.py checks they match)
# and "eastron": any Eastron model, detected by its meter code.
MODEL_NAMES = ("abb_b2x", "dtsu666", "em24", "em340", "sdm120", "sdm630", "sdm72dm2", "eastron")


def install(app):
    """Subsystem hook (firmware/app.py): RS485 meters in every slot of type 2."""
    from firmware.modbus.install import install_config
    install_config(app)   # rs485/config and rs485/state exist without a bus
    # Nothing keeps install.py referenced: it is imported again when a bus is made (get_bus).
    forget("firmware.modbus.install")
    app.rs485_meters = None  # {slot index: Rs485Meter} once a slot is an RS485 meter
    slot_check = app.configs["meters/0/config"].check  # the same for every slot (slots.py)

    def check(v):
        err = slot_check(v) if slot_check else None
        if err:
            return err
        if v["type"] != TYPE_RS485:
            return None
        if v["model"] not in MODEL_NAMES:
            return "Key 'model' has unknown meter model '%s': known are %s" % (
                v["model"], ", ".join(MODEL_NAMES))
        cm = app.configs.get("charge_manager/config")
        if cm is not None:   # the charge manager is installed: its wallboxes are on the bus too
            from firmware.chargers.manager import BUS_TYPES
            for c in cm["chargers"]:
                if c["type"] in BUS_TYPES and c.get("address", 1) == v["slave_id"]:
                    return "Key 'slave_id': %d is the address of charger '%s' on the RS485 bus" % (
                        v["slave_id"], c["name"])
        return None

    def changed(c):
        if c["type"] == TYPE_RS485 or app.rs485_meters:
            call_once("firmware.meters.rs485_setup", "slot_changed", app, c,
                      app.slots[int(c.name.split("/")[1])])

    for slot in app.slots:
        cfg = app.configs["meters/%d/config" % slot.index]
        cfg.check = check
        cfg.subscribe(changed)
        if cfg["type"] == TYPE_RS485:
            err = check(cfg.values)
            if err is None:
                changed(cfg)
            else:
                # The file was loaded before this check existed (a model of a newer firmware, an
                # edited file): the meter is not polled (its slot stays stale), the values are
                # kept, and system/state lists why, with the files that could not be loaded.
                cfg.load_error = "%s: %s" % (cfg.name, err)
                print("config:", cfg.load_error)
    return ()
