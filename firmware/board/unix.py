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
        self.wdt_feeds += 1

    def uart(self, cfg):
        """The RS485 port: rs485/config 'device' is a tty or pty path (docs/modbus.md)."""
        if not cfg["device"]:
            raise OSError("no serial device configured (rs485/config 'device')")
        # The port is a plain file object: unix_uart.py is needed only to open it.
        from firmware import call_once
        return call_once("firmware.board.unix_uart", "open_uart", cfg["device"], cfg["baud"],
                         cfg["parity"], cfg["stop_bits"])

    # --- added for the board helpers (docs/board.md) ---------------------------------------
    wdt_timeout_ms = None     # set by wdt_start: there is no hardware, tests read the counts
    wdt_feeds = 0

    def wdt_start(self, timeout_ms):
        self.wdt_timeout_ms = timeout_ms

    def display(self):
        """The OLED stand-in: every frame is written to <fs_dir>/display.pbm."""
        from firmware.ui.filedisplay import FileDisplay
        d = FileDisplay(self.fs_dir.rstrip("/") + "/display.pbm")
        d.init()
        return d

    def safe_mode_requested(self):
        """PVC_SAFE_MODE=1 in the environment or a file SAFE_MODE in the config folder."""
        import os
        if os.getenv("PVC_SAFE_MODE") == "1":
            return True
        try:
            os.stat(self.fs_dir.rstrip("/") + "/SAFE_MODE")
            return True
        except OSError:
            return False
