# A stand-in for the ESP32's `machine` module so firmware/board/esp32.py's logic runs on the Unix
# port in tests. It records what the board module asked for; tests drive input levels.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

levels = {}      # gpio -> level an input reads
created = []     # (gpio, mode, pull, value)
wdt_log = []


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1

    def __init__(self, gpio, mode=-1, pull=-1, value=None):
        # What the ESP32 port raises (ports/esp32/machine_pin.c): no such GPIO, output on an
        # input-only one, not a number.
        if not isinstance(gpio, int) or isinstance(gpio, bool):
            raise TypeError("can't convert %s to int" % type(gpio).__name__)
        if not 0 <= gpio <= 39 or gpio in (20, 24, 28, 29, 30, 31):
            raise ValueError("invalid pin")
        if gpio >= 34 and mode == Pin.OUT:
            raise ValueError("pin can only be input")
        self.gpio = gpio
        created.append((gpio, mode, pull, value))
        if value is not None:
            levels[gpio] = value

    def value(self, v=None):
        if v is None:
            return levels.get(self.gpio, 0)
        levels[self.gpio] = 1 if v else 0


class UART:
    def __init__(self, uart_id, **kw):
        self.id = uart_id
        self.kw = kw

    def deinit(self):
        pass


class I2C:
    def __init__(self, bus, scl=None, sda=None, freq=400000):
        self.bus = bus
        self.writes = []

    def scan(self):
        return [0x3C]

    def writeto(self, addr, buf):
        self.writes.append(bytes(buf))

    def writevto(self, addr, bufs):
        self.writes.append(b"".join(bytes(b) for b in bufs))


class WDT:
    def __init__(self, timeout=5000):
        wdt_log.append(("start", timeout))

    def feed(self):
        wdt_log.append("feed")


def unique_id():
    return b"\x24\x0a\xc4\x01\x1a\x2b"


def reset_cause():
    return WDT_RESET


def reset():
    raise SystemExit("machine.reset")
