# The bus-facing UART of an ESP32 RS485 port: a machine.UART plus the transceiver's driver-enable
# (DE, tied to /RE) pin, both created by firmware/board/esp32.py and passed in, so this module
# imports no machine and is tested on the Unix port with stand-ins.
#
# Direction timing is the classic RS485 trap: DE must stay high until the LAST STOP BIT has left
# the shift register, else the tail of the CRC is cut off; and must go low right after, else
# the meter's answer (sent after 3.5 character times) collides with our driver. UART.flush()
# waits for exactly that on the ESP32 port (uart_wait_tx_done).


class Rs485Uart:
    """The bus's UART interface (firmware/modbus/bus.py): write(buf) switches the driver on and
    queues the frame, finish_tx() releases the driver after the last stop bit."""

    def __init__(self, uart, de_pin=None):
        self._uart = uart
        self._de = de_pin
        if de_pin is not None:
            de_pin.value(0)  # listen

    def write(self, buf):
        """Driver on, frame into the UART's TX buffer; returns at once (the bus task sleeps
        through most of the wire time instead of blocking the event loop), then finish_tx()."""
        if self._de is not None:
            self._de.value(1)
        self._uart.write(buf)

    def finish_tx(self):
        """Block until the last stop bit is out (a ms or two), then release the bus."""
        try:
            self._uart.flush()
        finally:
            if self._de is not None:
                self._de.value(0)

    def readinto(self, buf):
        u = self._uart
        if not u.any():
            return 0
        return u.readinto(buf) or 0

    def close(self):
        if self._de is not None:
            self._de.value(0)
        try:
            self._uart.deinit()
        except AttributeError:
            pass


# Parity of the bus config (0 none, 1 odd, 2 even) as machine.UART wants it.
UART_PARITY = (None, 1, 0)
