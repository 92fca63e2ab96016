# Errors raised by ModbusBus requests. All derive from ModbusError, so a poller that only cares
# "did it work" catches one class. Classes (not codes) because their names are what meter and
# charger states show as last_error ("ModbusTimeout slave 1: no answer").


class ModbusError(Exception):
    pass


class ModbusTimeout(ModbusError):
    """No answer within the response timeout (after all retries)."""


class ModbusCrcError(ModbusError):
    """An answer arrived but its CRC was wrong (after all retries)."""


class ModbusFrameError(ModbusError):
    """Bytes arrived but no complete, valid answer among them (truncated or garbled)."""


class ModbusException(ModbusError):
    """The slave answered with an exception response; `code` is the Modbus exception code
    (1 illegal function, 2 illegal data address, 3 illegal data value, 4 device failure, ...),
    set by the bus (no __init__ of its own: a method costs heap)."""


class ModbusPortError(ModbusError):
    """The serial port could not be opened or written (the bus retries opening it later)."""
