#!/usr/bin/env python3
"""A MicroPython Unix-port "board" on a pseudo-terminal, for mpremote and the deploy test.

    .venv/bin/python tools/pty_board.py --dir /tmp/board --link /tmp/board.tty [--heap 100wK]
    .venv/bin/mpremote connect /tmp/board.tty resume ls

The bridge owns a pty pair whose slave end (symlinked at --link) is the "serial port". Behind it
runs `micropython` in --dir on a second pty, as if powered on: it runs boot.py and main.py when
they exist, then the REPL (so mpremote's Ctrl-C interrupts main.py and gets a REPL, as on an
ESP32). The Unix port exits where a board would soft-reset (Ctrl-D, sys.exit() in the raw REPL):
the bridge then starts it again, which boots the freshly deployed main.py.

--romfs-partition FILE gives the board a 128 KiB ROMFS partition kept in FILE: a stand-in for
the ESP32 port's vfs.rom_ioctl (the Unix port has none), so that `mpremote romfs deploy` (and
`make deploy ROMFS=1`) can write it; at power-up a valid image in it is mounted at /rom with
/rom/lib on sys.path, as the ESP32 port does. Only the interface is simulated: no flash is
memory-mapped (the image is read into the heap) and nothing is erased in sectors.

Details a board does not have: the inner pty is raw (no \\r\\r\\n from output processing) but
keeps ISIG so Ctrl-C raises KeyboardInterrupt in a running program; output nobody reads is
dropped, like a UART with nothing attached. Environment variables (PVC_PORT, PVC_DIR, ...) pass
through to the firmware.
"""
import argparse
import errno
import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in micropython before the REPL: what a board's firmware does after reset.
_BOOT = """\
import sys, os
sys.path.insert(0, '')
def _boot(name):
    try:
        os.stat(name)
    except OSError:
        return
    exec(open(name).read(), {'__name__': '__main__'})
_boot('boot.py')
_boot('main.py')
"""

# Prepended to _BOOT with --romfs-partition: the partition, vfs.rom_ioctl for mpremote (a `vfs`
# stand-in in sys.modules: the REPL's `import vfs` finds it first) and the mount at power-up.
_ROMFS = """\
import vfs as _vfs
class _RomVfs:
    def __init__(self, path, size):
        self.mount, self.umount, self.VfsRom = _vfs.mount, _vfs.umount, _vfs.VfsRom
        self.VfsPosix = _vfs.VfsPosix
        self.path = path
        self.part = bytearray(b'\\xff' * size)
        try:
            with open(path, 'rb') as f:
                f.readinto(self.part)
        except OSError:
            pass
    def rom_ioctl(self, op, *args):
        # ops as mpremote uses them (mpremote/commands.py _do_romfs_*): 1 number of partitions,
        # 2 the partition, 6 its erase-block size, 3 erase (id, offset, length), 4 write
        # (id, offset, data), 5 writing done
        if op == 1:
            return 1
        if op == 2:
            return memoryview(self.part)
        if op == 6:
            return 4096
        if op == 3:
            offset, length = args[1:] if len(args) == 3 else (0, args[1])
            for i in range(offset, offset + length):
                self.part[i] = 0xff
            return 4
        if op == 4:
            self.part[args[1]:args[1] + len(args[2])] = args[2]
            return 0
        if op == 5:
            with open(self.path, 'wb') as f:
                f.write(self.part)
            return 0
        return -22
_rom = _RomVfs(%r, %d)
if _rom.part[:3] == b'\\xd2\\xcd\\x31':
    _vfs.mount(_vfs.VfsRom(_rom.part), '/rom')
    sys.path.append('/rom/lib')
sys.modules['vfs'] = _rom
"""
ROMFS_PARTITION_BYTES = 128 * 1024     # ESP32_GENERIC ROMFS variant: partitions-4MiB-romfs.csv


def _raw(fd, isig=False):
    tty.setraw(fd)
    if isig:
        attrs = termios.tcgetattr(fd)
        attrs[3] |= termios.ISIG
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _controlling_tty():
    # New session with the inner pty as controlling terminal: Ctrl-C -> SIGINT to micropython.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyBoard:
    def __init__(self, board_dir, heap="100wK", micropython=None, run_main=True, log=None,
                 romfs_partition=None):
        self.log = log
        self.board_dir = str(board_dir)
        self.heap = heap
        self.micropython = micropython or str(ROOT / ".venv" / "bin" / "micropython")
        self.run_main = run_main
        self.outer_master, self.outer_slave = pty.openpty()
        _raw(self.outer_slave)
        os.set_blocking(self.outer_master, False)
        self.port = os.ttyname(self.outer_slave)
        self.boot_file = Path(self.board_dir) / ".." / (".pty_boot_%d.py" % os.getpid())
        self.boot_file = self.boot_file.resolve()
        boot = _BOOT
        if romfs_partition:
            rom = _ROMFS % (str(Path(romfs_partition).resolve()), ROMFS_PARTITION_BYTES)
            boot = boot.replace("sys.path.insert(0, '')\n", "sys.path.insert(0, '')\n" + rom)
        self.boot_file.write_text(boot)
        self.child = None
        self.inner_master = None
        self.boots = 0

    def start_child(self):
        m, s = pty.openpty()
        _raw(s, isig=True)
        cmd = [self.micropython, "-X", "heapsize=" + self.heap]
        cmd += ["-i", str(self.boot_file)] if self.run_main else []
        self.child = subprocess.Popen(cmd, stdin=s, stdout=s, stderr=s, cwd=self.board_dir,
                                      start_new_session=True, preexec_fn=_controlling_tty,
                                      close_fds=True)
        os.close(s)
        self.inner_master = m
        self.boots += 1

    def _forward_out(self, data):
        if self.log is not None:
            self.log.write(data)
            self.log.flush()
        try:
            os.write(self.outer_master, data)
        except BlockingIOError:
            pass  # nobody reading the "UART": the bytes are lost, as on a board

    def serve(self, stop=lambda: False):
        self.start_child()
        while not stop():
            fds = [self.outer_master, self.inner_master]
            r, _, _ = select.select(fds, [], [], 0.1)
            if self.outer_master in r:
                try:
                    data = os.read(self.outer_master, 4096)
                except OSError:
                    data = b""
                if data:
                    os.write(self.inner_master, data)
            if self.inner_master in r:
                try:
                    data = os.read(self.inner_master, 4096)
                except OSError as e:  # EIO: the child closed its terminal
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    self._forward_out(data)
            if self.child.poll() is not None:
                # Exit = soft reset on a board: drain what is left and power up again.
                os.close(self.inner_master)
                time.sleep(0.05)
                self.start_child()

    def close(self):
        if self.child and self.child.poll() is None:
            os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait()
        try:
            self.boot_file.unlink()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="the board's file system root")
    ap.add_argument("--link", help="symlink to create for the serial port")
    ap.add_argument("--heap", default="100wK")
    ap.add_argument("--no-main", action="store_true", help="REPL only, never run main.py")
    ap.add_argument("--log", help="append everything the board prints to this file")
    ap.add_argument("--romfs-partition", metavar="FILE",
                    help="a ROMFS partition kept in FILE (mpremote romfs deploy can write it)")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    log = open(a.log, "ab") if a.log else None
    board = PtyBoard(a.dir, a.heap, run_main=not a.no_main, log=log,
                     romfs_partition=a.romfs_partition)
    if a.link:
        try:
            os.unlink(a.link)
        except OSError:
            pass
        os.symlink(board.port, a.link)
    print(board.port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        board.serve()
    finally:
        board.close()
        if a.link:
            try:
                os.unlink(a.link)
            except OSError:
                pass


if __name__ == "__main__":
    main()
