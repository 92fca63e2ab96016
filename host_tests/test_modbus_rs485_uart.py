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
u.write(memoryview(bytearray(16))[:8])   # the bus writes a view of its frame buffer
u.finish_tx()
b = bytearray(8)
log.append(u.readinto(b))
log.append(u.readinto(b))
u.close()
print(log, UART_PARITY)
""")
    assert out.strip() == ("['de0', 'de1', 'write8', 'flush', 'de0', 2, 0, 'de0', 'deinit'] "
                           "(None, 1, 0)")


def test_bus_sleeps_through_the_frame_and_releases_the_driver():
    # A whole transaction through Rs485Uart: the driver goes on, the frame is queued, the bus
    # task sleeps (other tasks run) most of the 8.3 ms wire time of 9600 baud, then flush() and
    # the driver goes off; the answer is read after that.
    out = run_mp("""
import asyncio, time
from firmware.clock import Clock
from firmware.modbus import rtu
from firmware.modbus.bus import ModbusBus
from firmware.board.rs485_uart import Rs485Uart
log = []
t0 = time.ticks_ms()
def at():
    return time.ticks_diff(time.ticks_ms(), t0)
class Pin:
    def value(self, v):
        log.append(('de%d' % v, at()))
class Uart:
    rx = bytearray()
    def write(self, b):
        log.append(('write', at()))
        ans = bytearray(b'\\x05\\x04\\x02\\x12\\x34\\x00\\x00')
        rtu.append_crc(ans, 5)
        self.rx = ans
    def flush(self):
        log.append(('flush', at()))
    def any(self):
        return len(self.rx)
    def readinto(self, buf):
        n = len(self.rx)
        buf[:n] = self.rx
        self.rx = bytearray()
        return n
    def read(self):
        self.rx = bytearray()
bus = ModbusBus(lambda: Rs485Uart(Uart(), Pin()), Clock(), baud=9600)
ticks = []
async def other():
    while True:
        ticks.append(len(log))  # where in the log this task ran: by order, not by the clock
        await asyncio.sleep_ms(0)
async def main():
    asyncio.create_task(other())
    r = await bus.read_input(5, 0, 1)
    print(hex(r[0]))
    names = [e[0] for e in log]
    print(names)
    tw = [e[1] for e in log if e[0] == 'write'][0]
    tf = [e[1] for e in log if e[0] == 'flush'][0]
    print(tf - tw >= 5, names.index('flush') in ticks)  # it ran after the write, before flush
asyncio.run(main())
""")
    lines = out.split("\n")
    assert lines[0] == "0x1234"
    assert lines[1] == "['de0', 'de1', 'write', 'flush', 'de0']"
    assert lines[2] == "True True"
