# Modbus RTU framing: CRC16, request building and response scanning. Pure functions on
# preallocated buffers (start/end indexes instead of slices, so nothing here allocates): the bus
# (bus.py) owns the buffers and the timing, this module only knows the bytes.
#
# Frame layouts (Modbus over Serial Line V1.02, Modbus Application Protocol V1.1b3):
#   request 03/04:  id fc addr_hi addr_lo count_hi count_lo crc_lo crc_hi          (8 bytes)
#   answer 03/04:   id fc byte_count data... crc_lo crc_hi                         (5 + 2n)
#   request 06:     id 06 addr_hi addr_lo value_hi value_lo crc_lo crc_hi          (8 bytes)
#   answer 06:      echo of the request                                            (8 bytes)
#   request 16:     id 10 addr(2) count(2) byte_count values... crc(2)             (9 + 2n)
#   answer 16:      id 10 addr(2) count(2) crc(2)                                  (8 bytes)
#   exception:      id fc|0x80 code crc(2)                                         (5 bytes)
from micropython import const

FC_READ_HOLDING = const(3)
FC_READ_INPUT = const(4)
FC_WRITE_SINGLE = const(6)
FC_WRITE_MULTIPLE = const(16)

MAX_READ_REGS = const(125)   # protocol limit for 03/04 (byte count fits one byte)
MAX_WRITE_REGS = const(123)  # protocol limit for 16
# Largest frame on the wire: 256 bytes (RTU ADU limit).
MAX_FRAME = const(256)

_table = None


def crc16(buf, start, end):
    """CRC-16/MODBUS of buf[start:end] (init 0xFFFF); sent low byte first."""
    global _table
    t = _table
    if t is None:
        # The CRC of each 4-bit value (poly 0xA001 reflected), built on first use (no work at
        # import): 32 bytes where a byte table takes 512, for two lookups a byte instead of one.
        from array import array
        t = array("H", bytes(32))
        for i in range(16):
            c = i
            for _ in range(4):
                c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
            t[i] = c
        _table = t
    c = 0xFFFF
    for i in range(start, end):
        c ^= buf[i]
        c = (c >> 4) ^ t[c & 0xF]
        c = (c >> 4) ^ t[c & 0xF]
    return c


def append_crc(buf, n):
    """Write the CRC of buf[0:n] at buf[n], buf[n+1]; return the frame length n + 2."""
    c = crc16(buf, 0, n)
    buf[n] = c & 0xFF
    buf[n + 1] = c >> 8
    return n + 2


def build_request(buf, slave, fc, addr, count_or_value, values=None):
    """Build a request in buf; return its length: a 03/04 read (count), a 06 write (value) or,
    with `values`, a 16 write of len(values) registers."""
    buf[0] = slave
    buf[1] = fc
    buf[2] = addr >> 8
    buf[3] = addr & 0xFF
    buf[4] = (count_or_value >> 8) & 0xFF
    buf[5] = count_or_value & 0xFF
    if values is None:
        return append_crc(buf, 6)
    n = len(values)
    buf[6] = 2 * n
    j = 7
    for i in range(n):
        v = values[i] & 0xFFFF
        buf[j] = v >> 8
        buf[j + 1] = v & 0xFF
        j += 2
    return append_crc(buf, j)


# What scan() found when no answer is complete (an answer: its start index, >= 0).
NEED_MORE = const(-1)        # nothing complete yet: keep reading
BAD_CRC = const(-2)          # a complete candidate whose CRC is wrong, and nothing can complete
PENDING_BAD_CRC = const(-3)  # a candidate failed its CRC, another may still complete


def scan(buf, n, slave, fc, count, req_buf):
    """Find the answer to the request in req_buf (slave, fc, count as it was built) in
    buf[0:n]: its start index (an exception answer when buf[start + 1] & 0x80), else
    NEED_MORE, BAD_CRC or PENDING_BAD_CRC.

    An answer must carry the request's slave id and function code (or its exception form), the
    byte count the request implies, and a good CRC. Bytes that do not fit (stray bytes, the tail
    of an earlier truncated frame, a corrupted frame) are skipped one at a time, so a good frame
    right behind garbage is still found (resynchronisation). A function, not a scanner object:
    nothing to keep between calls but the buffer."""
    reads = fc == FC_READ_HOLDING or fc == FC_READ_INPUT
    want = 5 + 2 * count if reads else 8  # a normal answer's length
    xfc = fc | 0x80
    bad_crc = False
    pending = False
    for s in range(n - 1):
        if buf[s] != slave:
            continue
        f = buf[s + 1]
        if f == xfc:
            ln = 5
        elif f == fc:
            ln = want
            if reads and s + 2 < n and buf[s + 2] != 2 * count:
                continue  # wrong byte count: not our answer
        else:
            continue
        if s + ln > n:
            pending = True  # may still complete with more bytes
            continue
        c = crc16(buf, s, s + ln - 2)
        if buf[s + ln - 2] != (c & 0xFF) or buf[s + ln - 1] != (c >> 8):
            bad_crc = True
            continue
        if f == fc and not reads:
            # A write answer echoes address and value/count of the request.
            ok = True
            for i in range(2, 6):
                if buf[s + i] != req_buf[i]:
                    ok = False
            if not ok:
                continue
        return s
    if bad_crc:
        return PENDING_BAD_CRC if pending else BAD_CRC
    return NEED_MORE


def decode_registers(buf, start, count, regs):
    """Copy `count` big-endian registers of the 03/04 answer at buf[start] into regs."""
    j = start + 3
    for i in range(count):
        regs[i] = (buf[j] << 8) | buf[j + 1]
        j += 2


def char_time_us(baud, bits_per_char):
    return (bits_per_char * 1000000 + baud - 1) // baud


def frame_gap_us(baud, bits_per_char):
    """The 3.5-character silence that ends a frame; fixed 1750 us above 19200 baud
    (Modbus over Serial Line V1.02, 2.5.1.1)."""
    if baud > 19200:
        return 1750
    return (35 * bits_per_char * 1000000 // baud + 9) // 10
