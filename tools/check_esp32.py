#!/usr/bin/env python3
"""Type-check the ESP32-only firmware against the pinned micropython-esp32-stubs with mypy.

The stubs package installs its .pyi files at the top of site-packages, where mypy does not look
for untyped top-level modules; so they are copied into build/esp32-stubs and mypy runs with
MicroPython's own stdlib stubs (micropython-stdlib-stubs) as the typeshed. Exit code = mypy's.

    .venv/bin/python tools/check_esp32.py [files...]
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The ESP32-only modules, plus the driver they hand the I2C bus to.
DEFAULT_FILES = ["firmware/board/esp32.py", "firmware/ui/ssd1306.py"]
STUB_DIST = "micropython_esp32_stubs"

# Errors inside the third-party stubs are not ours to fix (the stub modules are listed in the
# second section); every module of ours is checked.
_CONFIG = """\
[mypy]
follow_imports = normal
warn_unused_configs = False
check_untyped_defs = True

[mypy-%s]
ignore_errors = True
"""


def build_stub_dir(site, out):
    dist = next(site.glob(STUB_DIST + "-*.dist-info"), None)
    if dist is None:
        sys.exit("check_esp32: %s is not installed (make setup)" % STUB_DIST)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    modules = {"_mpy_shed", "_mpy_shed.*"}
    for line in (dist / "RECORD").read_text().splitlines():
        rel = line.split(",")[0]
        if rel.endswith(".pyi"):
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(site / rel, dst)
            top = rel.split("/")[0].replace(".pyi", "")
            modules.update((top, top + ".*"))
    # Helper stubs the MicroPython stubs import (shipped by micropython-stdlib-stubs).
    shutil.copytree(site / "_mpy_shed", out / "_mpy_shed")
    (out / "mypy.ini").write_text(_CONFIG % ",".join(sorted(modules)))


def main(argv):
    site = Path(sysconfig.get_paths()["purelib"])
    stubs = ROOT / "build" / "esp32-stubs"
    build_stub_dir(site, stubs)
    files = argv or DEFAULT_FILES
    env = dict(os.environ, MYPYPATH=str(stubs))
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(stubs / "mypy.ini"),
           "--custom-typeshed-dir", str(site), "--no-site-packages",
           "--cache-dir", str(ROOT / "build" / "mypy-cache"), *files]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
