"""The ESP32 RS485 UART wrapper with stand-ins for machine.UART and the driver-enable pin: the
driver is on exactly while a frame is sent and until flush() (last stop bit) returned."""
from mp import run_mp


def test_driver_enable_brackets_the_frame():
    out = run_mp("""
from firmware.board.rs485_uart import Rs485Uart, UART_PARITY
log = []
class Pin:
    def value(self, v):
        log.append('de%d' % v)
class Uart:
    def __init__(self):
        self.rx = bytearray(b'\\x01\\x04')
    def write(self, b):
        log.append('write%d' % len(b))
    def flush(self):
        log.append('flush')
    def any(self):
        return len(self.rx)
    def readinto(self, buf):
        n = len(self.rx)
        buf[:n] = self.rx
        self.rx = bytearray()
        return n
    def read(self):
        self.rx = bytearray()
    def deinit(self):
        log.append('deinit')
u = Rs485Uart(Uart(), Pin())
u.write(bytearray(16), 8)
b = bytearray(8)
log.append(u.readinto(b))
log.append(u.readinto(b))
u.close()
print(log, UART_PARITY)
""")
    assert out.strip() == ("['de0', 'de1', 'write8', 'flush', 'de0', 2, 0, 'de0', 'deinit'] "
                           "(None, 1, 0)")
