# The one RS485 bus of the app: its config object (rs485/config), its state (rs485/state) and
# its owner task. Every user (meters, Modbus wallboxes) gets the same bus from get_bus(app).
from firmware.api.config import ConfigObject, Field, INT, STR

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITY_NONE = 0
PARITY_ODD = 1
PARITY_EVEN = 2


def config_object(store):
    return ConfigObject("rs485/config", [
        Field("baud", INT, 9600, choices=BAUD_RATES),
        Field("parity", INT, PARITY_NONE, choices=(PARITY_NONE, PARITY_ODD, PARITY_EVEN)),
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
    ], store)


def bits_per_char(cfg):
    # start + 8 data + parity + stop bits
    return 9 + (1 if cfg["parity"] else 0) + cfg["stop_bits"]


def uart_opener(board, cfg):
    """A function opening the UART for these settings (called lazily by the bus)."""
    values = dict(cfg.values)
    make = getattr(board, "uart", None)
    if make is not None:
        return lambda: make(values)

    def open_unix():
        # A board without uart(): the Unix port's serial device path.
        from firmware.board.unix_uart import open_uart
        if not values["device"]:
            raise OSError("no serial device configured (rs485/config 'device')")
        return open_uart(values["device"], values["baud"], values["parity"], values["stop_bits"])
    return open_unix


class BusState:
    """rs485/state: port status and per-slave counters."""

    def __init__(self, bus):
        self.bus = bus

    def to_dict(self):
        b = self.bus
        return {"port_open": b.port_open(), "port_error": b.port_error,
                "transactions": b.transactions,
                "slaves": {str(k): s.to_dict() for k, s in b.slave_stats()}}


def get_bus(app):
    """The app's ModbusBus, created with its config, state and task on first call."""
    bus = getattr(app, "modbus_bus", None)
    if bus is not None:
        return bus
    from firmware.clock import Clock
    from firmware.modbus.bus import ModbusBus
    cfg = config_object(app.store)
    cfg.load()
    app.configs[cfg.name] = cfg
    app.registry.add(cfg.name, cfg)
    # Wire timing needs real time even when the simulation clock runs faster.
    bus = ModbusBus(uart_opener(app.board, cfg), Clock(), baud=cfg["baud"],
                    bits_per_char=bits_per_char(cfg), timeout_ms=cfg["timeout_ms"],
                    retries=cfg["retries"], gap_ms=cfg["gap_ms"])

    def apply(c):
        bus.configure(baud=c["baud"], bits_per_char=bits_per_char(c), timeout_ms=c["timeout_ms"],
                      retries=c["retries"], gap_ms=c["gap_ms"],
                      open_uart=uart_opener(app.board, c))
    cfg.subscribe(apply)
    app.registry.add("rs485/state", BusState(bus))
    app.modbus_bus = bus
    app.modbus_config = cfg
    app.tasks.append(bus.run())
    return bus
