# The one RS485 bus of the app: its config object (rs485/config) and its state (rs485/state).
# install_config() runs at start: rs485/config and, until a bus exists, a constant rs485/state;
# nothing here stays referenced, so the RS485 meter subsystem drops this module after the call.
# The bus itself (firmware/modbus/bus.py, rtu.py, the UART driver: ~10 KB of heap) is
# imported and created by get_bus(app) (this module imported again) when the first user (a
# meter slot of type 2, a Modbus wallbox) is configured. Every user gets the same bus.
import json

from firmware.api.config import ConfigObject, Field, INT, STR


def install_config(app):
    """rs485/config and rs485/state in the registry (once); no bus yet."""
    if getattr(app, "modbus_config", None) is None:
        cfg = ConfigObject("rs485/config", [
            Field("baud", INT, 9600, choices=(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)),
            # 0 none, 1 odd, 2 even
            Field("parity", INT, 0, choices=(0, 1, 2)),
            Field("stop_bits", INT, 1, choices=(1, 2)),
            # Response timeout after the request (plus the answer's own wire time): meters answer
            # in 20-60 ms (DOMAIN 5).
            Field("timeout_ms", INT, 200, 20, 5000),
            Field("retries", INT, 1, 0, 5),
            # Silence between two requests; some meters misbehave when polled back to back.
            Field("gap_ms", INT, 5, 0, 1000),
            # How often each RS485 meter is read (the reference: 500 ms).
            Field("poll_interval_ms", INT, 500, 50, 60000),
            # Unix port: serial device or pty path. ESP32: unused (pins below / board.json).
            Field("device", STR, "", hi=96),
            # ESP32 pins; -1 = the board's default from its pin map.
            Field("tx_pin", INT, -1, -1, 48),
            Field("rx_pin", INT, -1, -1, 48),
            Field("de_pin", INT, -1, -1, 48),
        ], app.store)
        cfg.load()
        app.configs[cfg.name] = cfg
        app.registry.add(cfg.name, cfg)
        # rs485/state before the bus exists: a port never opened, no slaves (what a fresh bus
        # reports), as a registry read tuple of a builtin and a string, so it keeps nothing of
        # this module alive and is hashable (the MQTT bridge keeps a set of entries); get_bus
        # puts the bus's own there.
        app.registry.add("rs485/state", (json.loads, '{"port_open": false, "port_error": null, '
                                                     '"transactions": 0, "slaves": {}}'))
        app.modbus_config = cfg
        app.modbus_bus = None
    return app.modbus_config


def get_bus(app):
    """The app's ModbusBus, created (firmware/modbus/bus.py app_bus) on first call."""
    install_config(app)
    if app.modbus_bus is None:
        from firmware.modbus.bus import app_bus
        app.modbus_bus = app_bus(app)
    return app.modbus_bus
