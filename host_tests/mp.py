"""Run firmware code on the MicroPython Unix port from pytest."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the clone (CI); from a worktree under /work/wt it is two levels up.
SHARED = next((p / "shared" for p in (ROOT.parent, ROOT.parent.parent)
               if (p / "shared").is_dir()), ROOT.parent / "shared")
MICROPYTHON = os.environ.get("MICROPYTHON", str(ROOT / ".venv" / "bin" / "micropython"))

# Prepended to every snippet: the repo root and lib/ on sys.path, as on the board.
_PRELUDE = "import sys\nsys.path[:0] = [%r, %r]\n" % (str(ROOT), str(ROOT / "lib"))


# Prepend to a snippet that must cross the ESP32's tick wrap: `time` with the ESP32's ticks
# (period 2**30 ms ~ 12.4 days; the Unix port's wrap at 2**62), in place before any firmware
# module imports it. (asyncio is imported first: its scheduler keeps the Unix port's ticks.)
ESP32_TICKS = """
import sys, time as _unix_time, asyncio
class _Esp32Time:
    def __getattr__(self, name):
        return getattr(_unix_time, name)
    @staticmethod
    def ticks_ms():
        return _unix_time.ticks_ms() & 0x3FFFFFFF
    @staticmethod
    def ticks_add(a, b):
        return (a + b) & 0x3FFFFFFF
    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000
sys.modules['time'] = _Esp32Time()
"""


class MicroPythonError(AssertionError):
    pass


def run_mp(code, heap="100wK", timeout=120, cwd=None, args=()):
    """Run `code` under `micropython -X heapsize=<heap>` and return its stdout.

    Raises MicroPythonError (with stdout and stderr) when it exits non-zero."""
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + heap, "-c", _PRELUDE + code, *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
    if proc.returncode != 0:
        raise MicroPythonError(
            "micropython exited %d\n--- stdout\n%s\n--- stderr\n%s"
            % (proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout
