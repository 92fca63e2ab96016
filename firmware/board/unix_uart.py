# A serial port on a Linux host (MicroPython Unix port): a tty device (USB-RS485 adapter) or one
# end of a pty pair (socat) in raw mode, polled without blocking. The adapter switches the RS485
# direction itself, so there is no driver-enable pin here.
import termios
from micropython import const

# termios attribute list: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]
_CFLAG = const(2)
_LFLAG = const(3)
_ISPEED = const(4)
_OSPEED = const(5)
_CC = const(6)
_VTIME = const(5)
_VMIN = const(6)
# Linux <asm-generic/termbits.h> values: the Unix port's termios only names a few of them.
_CBAUD = const(0o10017)
_CSIZE = const(0o60)
_CS8 = const(0o60)
_CSTOPB = const(0o100)
_CREAD = const(0o200)
_PARENB = const(0o400)
_PARODD = const(0o1000)
_CLOCAL = const(0o4000)
_CRTSCTS = const(0o20000000000)
BAUD_CODES = {1200: 9, 2400: 11, 4800: 12, 9600: 13, 19200: 14, 38400: 15, 57600: 0o10001,
              115200: 0o10002}


class UnixUart:
    """`path` opened raw, non-blocking reads (VMIN=0, VTIME=0: read returns what is there).

    parity: 0 none, 1 odd, 2 even; stop_bits 1 or 2."""

    def __init__(self, path, baud=9600, parity=0, stop_bits=1):
        code = BAUD_CODES.get(baud)
        if code is None:
            raise ValueError("baud %d not supported by this port" % baud)
        self._f = open(path, "r+b", buffering=0)
        fd = self._f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        cflag = attr[_CFLAG] & ~(_CBAUD | _CSIZE | _CSTOPB | _PARENB | _PARODD | _CRTSCTS)
        cflag |= code | _CS8 | _CREAD | _CLOCAL
        if parity:
            cflag |= _PARENB | (_PARODD if parity == 1 else 0)
        if stop_bits == 2:
            cflag |= _CSTOPB
        attr[_CFLAG] = cflag
        attr[_ISPEED] = code
        attr[_OSPEED] = code
        attr[_CC][_VMIN] = 0
        attr[_CC][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self._buf = None
        self._views = {}
        self._scratch = bytearray(64)

    def write(self, buf, n):
        # A memoryview slice per frame length, made once: steady-state writes allocate nothing.
        if buf is not self._buf:
            self._buf = buf
            self._views = {}
        v = self._views.get(n)
        if v is None:
            v = self._views[n] = memoryview(buf)[:n]
        done = 0
        while done < n:
            w = self._f.write(v if done == 0 else v[done:])
            done += w or 0

    def readinto(self, buf):
        return self._f.readinto(buf) or 0

    def discard(self):
        # Bounded: a line streaming garbage must not keep the event loop here.
        s = self._scratch
        for _ in range(16):
            if not self._f.readinto(s):
                break

    def close(self):
        self._f.close()


open_uart = UnixUart  # open_uart(path, baud, parity, stop_bits): no wrapper function (heap)
