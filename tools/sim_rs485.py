# `make sim GRID_METER=/dev/pts/N METER_MODEL=sdm630`: the simulated site's grid meter slot read
# over RS485 instead (e.g. from tools/meter_sim.py on the other end of a socat pty pair).
# Runs inside micropython (tools/sim_main.py); never deployed.
import json

from tools.simsite.wiring import GRID_SLOT, GRID_VALUE_IDS, GRID_NAME
from firmware.meters.slots import TYPE_SIM

_NAME_PREFIX = "RS485 grid meter ("   # marks the slot config written by use_rs485_grid_meter


def use_rs485_grid_meter(app, device, model, slave_id):
    app.registry.write("rs485/config", json.dumps({"device": device}))
    app.registry.write("meters/%d/config" % GRID_SLOT, json.dumps(
        {"type": 2, "model": model, "slave_id": slave_id,
         "display_name": _NAME_PREFIX + model + ")"}))
    print("sim: grid meter slot %d = RS485 %s, slave %d on %s" % (GRID_SLOT, model, slave_id,
                                                                  device))


def drop_rs485_grid_meter(app):
    """make sim without GRID_METER in a SIM_DIR that had it: the folder keeps every config, so
    slot 3 would stay an RS485 meter on a pty that is gone, and the simulated site's grid power
    would never reach the power manager (stale: PV charging off). Only the slot this module set
    up is given back to the simulated grid meter; one the user configured is left alone."""
    name = "meters/%d/config" % GRID_SLOT
    cfg = app.configs[name]
    if cfg["type"] != 2 or not cfg["display_name"].startswith(_NAME_PREFIX):
        return
    app.registry.write(name, json.dumps(
        {"type": TYPE_SIM, "model": "", "display_name": GRID_NAME,
         "value_ids": list(GRID_VALUE_IDS)}))
    print("sim: grid meter slot %d = simulated again (no GRID_METER)" % GRID_SLOT)
