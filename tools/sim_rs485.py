# `make sim GRID_METER=/dev/pts/N METER_MODEL=sdm630`: the simulated site's grid meter slot read
# over RS485 instead (e.g. from tools/meter_sim.py on the other end of a socat pty pair).
# Runs inside micropython (tools/sim_main.py); never deployed.
import json

from tools.simsite.wiring import GRID_SLOT


def use_rs485_grid_meter(app, device, model, slave_id):
    app.registry.write("rs485/config", json.dumps({"device": device}))
    app.registry.write("meters/%d/config" % GRID_SLOT, json.dumps(
        {"type": 2, "model": model, "slave_id": slave_id,
         "display_name": "RS485 grid meter (%s)" % model}))
    print("sim: grid meter slot %d = RS485 %s, slave %d on %s" % (GRID_SLOT, model, slave_id,
                                                                  device))
