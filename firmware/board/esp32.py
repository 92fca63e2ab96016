# The board interface on an ESP32 (stock MicroPython): the ONLY firmware module that imports
# machine / network / esp32. Every pin number comes from /board.json (see docs/board.md), so a
# different wiring is a file edit, not a code change. Objects are created on first use, never at
# import time, and handed to the subsystems that own them (one owner per resource).
import json

import machine
import network
from micropython import const

from firmware import call_once

BOARD_JSON = "/board.json"
FS_DIR = "/config"

def _defaults() -> dict:
    # ESP32 DevKit V1 (ESP32-WROOM-32) + MAX3485 RS485 transceiver + 1-channel relay board.
    return {
        "rs485": {"uart": 2, "tx": 17, "rx": 16, "de": 4},
        "pins": {
            "contactor": {"gpio": 26},                                      # contactor coil relay
            "contactor_feedback": {"gpio": 27, "pull": "up", "invert": True},  # aux to GND
            "button": {"gpio": 0, "pull": "up", "invert": True},            # BOOT button
            "led": {"gpio": 2},
        },
        "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 400000},
        "display": {"addr": 60, "width": 128, "height": 64},
    }


_PIN_MAP_CHECK = "firmware.board.pin_map"   # imported for the check only
_SAFE_POLL_MS = const(20)
_SAFE_HOLD_MS = const(100)       # pressed this long in the window: safe mode (debounced)


def load_pin_map(path=BOARD_JSON):
    """The pin map: defaults, with every section replaced by the file's where it has one.
    A missing file means the defaults; a broken one (not JSON, or an entry the board cannot
    use: firmware/board/pin_map.py) is reported and the defaults are used (the board boots)."""
    pin_map = _defaults()
    error = None
    try:
        with open(path) as f:
            data = json.load(f)
        pin_map = call_once(_PIN_MAP_CHECK, "merge", pin_map, data)
    except OSError:
        pass  # no file: defaults
    except (ValueError, KeyError, TypeError) as e:
        pin_map = _defaults()
        error = "%s: %s" % (path, e)
        print("board:", error, "- using default pins")
    return pin_map, error


class InvertedPin:
    """An active-low input or output seen as active-high, so drivers never care."""

    def __init__(self, pin):
        self._pin = pin

    def value(self, v=None):
        if v is None:
            return 1 - self._pin.value()
        self._pin.value(0 if v else 1)
        return None


class Esp32Board:
    name = "esp32"

    def __init__(self, pin_map_path=BOARD_JSON):
        self.pin_map, self.pin_map_error = load_pin_map(pin_map_path)
        self.fs_dir = FS_DIR
        self._pins = {}
        self._outputs = []
        self._i2c = None
        self._wdt = None
        self._hold_timer = None
        self._sta = None
        self._ap = None

    # --- GPIO -------------------------------------------------------------------------------
    def pin(self, name, out=True):
        """The pin named in board.json's "pins" section (ValueError when it has none)."""
        p = self._pins.get(name)
        if p is not None:
            # One pin, one direction: a feedback input named like the relay would read the
            # relay's own drive back and always agree.
            if (name in self._outputs) != out:
                raise ValueError("board.json: pin '%s' is already an %s"
                                 % (name, "input" if out else "output"))
            return p
        spec = self.pin_map["pins"].get(name)
        if not isinstance(spec, dict) or not isinstance(spec.get("gpio"), int):
            raise ValueError("board.json: no gpio for pin '%s'" % name)
        gpio = spec["gpio"]
        pull = spec.get("pull")
        if out:
            # An inverted output starts at its raw "1": the relay stays off through boot.
            raw = machine.Pin(gpio, machine.Pin.OUT, value=1 if spec.get("invert") else 0)
        elif pull == "up":
            raw = machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_UP)
        elif pull == "down":
            raw = machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_DOWN)
        else:
            raw = machine.Pin(gpio, machine.Pin.IN)
        p = InvertedPin(raw) if spec.get("invert") else raw
        self._pins[name] = p
        if out:
            self._outputs.append(name)
        return p

    def has_pin(self, name):
        return isinstance(self.pin_map["pins"].get(name), dict)

    # --- I2C and the OLED -------------------------------------------------------------------
    def uart(self, cfg):
        """The RS485 port for rs485/config `cfg` (docs/modbus.md): machine.UART plus the
        transceiver's driver-enable pin; pins from the config, else from the pin map."""
        from firmware.board.rs485_uart import Rs485Uart, UART_PARITY
        m = self.pin_map["rs485"]
        tx = cfg["tx_pin"] if cfg["tx_pin"] >= 0 else m["tx"]
        rx = cfg["rx_pin"] if cfg["rx_pin"] >= 0 else m["rx"]
        de = cfg["de_pin"] if cfg["de_pin"] >= 0 else m.get("de", -1)
        # Pins from rs485/config get the pin map's checks (a flash pin stops the chip, the
        # relay's pin would switch the contactor): ValueError = the bus reports no port.
        check = dict(self.pin_map)
        check["rs485"] = {"uart": m["uart"], "tx": tx, "rx": rx, "de": de}
        call_once(_PIN_MAP_CHECK, "check", check)
        u = machine.UART(m["uart"], baudrate=cfg["baud"], bits=8,
                         parity=UART_PARITY[cfg["parity"]], stop=cfg["stop_bits"], tx=tx, rx=rx,
                         timeout=0, timeout_char=0, rxbuf=512)
        return Rs485Uart(u, machine.Pin(de, machine.Pin.OUT, value=0) if de >= 0 else None)

    def i2c(self):
        if self._i2c is None:
            c = self.pin_map["i2c"]
            self._i2c = machine.I2C(c.get("id", 0), scl=machine.Pin(c["scl"]),
                                    sda=machine.Pin(c["sda"]), freq=c.get("freq", 400000))
        return self._i2c

    def display(self):
        """An initialised SSD1306, or None when none answers on the bus."""
        from firmware.ui.ssd1306 import SSD1306
        c = self.pin_map["display"]
        addr = c.get("addr", 0x3C)
        try:
            i2c = self.i2c()
            if addr not in i2c.scan():
                return None
            d = SSD1306(i2c, c.get("width", 128), c.get("height", 64), addr)
            d.init()
            return d
        except OSError as e:
            print("board: display:", e)
            return None

    # --- watchdog ---------------------------------------------------------------------------
    def wdt_start(self, timeout_ms):
        # Once started the ESP32's task watchdog cannot be stopped: only the watchdog task
        # (firmware/supervisor/watchdog.py) calls this, after the app is built.
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def wdt_hold(self):
        """After Ctrl-C (a human or mpremote at the REPL): the WDT cannot be stopped, so feed
        it from a timer until the next reset. The timer callback is a soft IRQ that runs while
        the REPL waits for input; a soft reset removes the timer."""
        if self._wdt is not None and self._hold_timer is None:
            wdt = self._wdt
            self._hold_timer = machine.Timer(0)
            self._hold_timer.init(period=5000, mode=machine.Timer.PERIODIC,
                                  callback=lambda t: wdt.feed())

    # --- Wi-Fi ------------------------------------------------------------------------------
    def wlan_sta(self):
        if self._sta is None:
            self._sta = network.WLAN(network.STA_IF)
        return self._sta

    def set_hostname(self, name):
        network.hostname(name)

    def wlan_failure(self, sta):
        """Why the station's last attempt failed, from the driver's status (network/state).
        The codes differ between ESP-IDF versions, so they are compared by their names."""
        try:
            code = sta.status()
        except (OSError, ValueError):
            return ""
        for name, text in (
                ("STAT_WRONG_PASSWORD", "wrong password"),
                ("STAT_NO_AP_FOUND", "no network with this SSID in range"),
                ("STAT_HANDSHAKE_TIMEOUT", "no answer to the key handshake (wrong password?)"),
                ("STAT_ASSOC_FAIL", "the access point refused the association"),
                ("STAT_CONNECT_FAIL", "the connection failed"),
                ("STAT_BEACON_TIMEOUT", "the access point's signal was lost"),
                ("STAT_CONNECTING", "still connecting (no address from DHCP?)"),
                ("STAT_IDLE", "no attempt under way")):
            if code == getattr(network, name, None):
                return text
        return "driver status %r" % (code,)

    def wlan_ap(self):
        if self._ap is None:
            self._ap = network.WLAN(network.AP_IF)
        return self._ap

    # --- boot -------------------------------------------------------------------------------
    def unique_id(self):
        """The whole chip id (6 bytes, the MAC): names the board on MQTT and in Home Assistant
        (firmware/mqtt/cold.py), where the suffix's 16 bits could be shared by two boards."""
        return machine.unique_id()

    def unique_suffix(self):
        """Four hex digits of the chip id: names the setup access point."""
        uid = machine.unique_id()
        return "%02x%02x" % (uid[-2], uid[-1])

    def reset_cause(self):
        return {machine.PWRON_RESET: "power on", machine.HARD_RESET: "hard reset",
                machine.WDT_RESET: "watchdog", machine.DEEPSLEEP_RESET: "deep sleep",
                machine.SOFT_RESET: "soft reset"}.get(machine.reset_cause(), "other")

    def safe_mode_requested(self, window_ms=2000):
        """True when the button is held for 100 ms within `window_ms` after boot. The LED is on
        during the window. (On a DevKit the button is GPIO0: holding it *during* reset enters
        the ROM bootloader, so press it right after reset, while the LED is lit.)"""
        if not self.has_pin("button"):
            return False
        import time
        btn = self.pin("button", out=False)
        led = self.pin("led") if self.has_pin("led") else None
        if led is not None:
            led.value(1)
        held_ms = 0
        waited_ms = 0
        while waited_ms < window_ms and held_ms < _SAFE_HOLD_MS:
            held_ms = held_ms + _SAFE_POLL_MS if btn.value() else 0
            time.sleep_ms(_SAFE_POLL_MS)
            waited_ms += _SAFE_POLL_MS
        if led is not None:
            led.value(0)
        return held_ms >= _SAFE_HOLD_MS

    def reset(self):
        machine.reset()
