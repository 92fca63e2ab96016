# A serial port on a Linux host (MicroPython Unix port): a tty device (USB-RS485 adapter) or one
# end of a pty pair (socat) in raw mode, polled without blocking. The adapter switches the RS485
# direction itself, so there is no driver-enable pin here.
#
# The port is the raw file object itself: it already has the bus's UART interface
# (firmware/modbus/bus.py): write(buf), readinto(buf) (0 when nothing is there: VMIN=0, VTIME=0)
# and close(). No wrapper class, so nothing of this module is needed once the port is open:
# the board imports it for the call and drops it (firmware/board/unix.py).
import termios
from micropython import const

# termios attribute list: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]
_CFLAG = const(2)
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


def open_uart(path, baud=9600, parity=0, stop_bits=1):
    """`path` opened raw, reads non-blocking (VMIN=0, VTIME=0: a read returns what is there).
    parity: 0 none, 1 odd, 2 even; stop_bits 1 or 2."""
    code = BAUD_CODES.get(baud)
    if code is None:
        raise ValueError("baud %d not supported by this port" % baud)
    f = open(path, "r+b", buffering=0)
    try:
        fd = f.fileno()
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
    except Exception:
        f.close()     # not a tty, ...: no open file left behind
        raise
    return f
