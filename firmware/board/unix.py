# The board interface on a Linux host (MicroPython Unix port): memory-backed pins, config files in
# a folder (SIM_DIR), no watchdog hardware. Serial ports come from firmware/board/unix_uart.py.


class MemoryPin:
    """A GPIO stand-in: the simulator (or a test) reads outputs and drives inputs."""

    def __init__(self, name, value=0):
        self.name = name
        self._value = value

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0


class UnixBoard:
    name = "unix"

    def __init__(self, fs_dir):
        self.fs_dir = fs_dir
        self.pins = {}

    def pin(self, name, out=True):
        p = self.pins.get(name)
        if p is None:
            p = self.pins[name] = MemoryPin(name)
        return p

    def wdt_feed(self):
        pass
