"""Modbus RTU framing on the Unix port: golden bytes, answer scanning and resync, no allocation."""
import json

from mp import run_mp

_PRE = """
from firmware.modbus import rtu
import json
def frame(hexstr):
    return bytearray(bytes.fromhex(hexstr))
"""


def test_golden_requests_and_crc():
    # Golden frames: the Modbus spec's examples (slave 0x11) and well-known 01 03 / 01 04 frames.
    out = run_mp(_PRE + """
b = bytearray(256)
res = []
for args in ((1, 4, 0, 2), (1, 3, 0, 10), (0x11, 3, 0x6B, 3), (0x11, 6, 1, 3)):
    n = rtu.build_request(b, *args)
    res.append(bytes(b[:n]).hex())
n = rtu.build_request(b, 0x11, 16, 1, 2, [0x000A, 0x0102])
res.append(bytes(b[:n]).hex())
res.append(rtu.crc16(b'123456789', 0, 9))
print(json.dumps(res))
""")
    assert json.loads(out) == ["01040000000271cb", "01030000000ac5cd", "1103006b00037687",
                               "1106000100039a9b", "1110000100020400 0a0102c6f0".replace(" ", ""),
                               0x4B37]  # CRC-16/MODBUS check value


def test_scanner_finds_answer_behind_garbage_and_rejects_bad_ones():
    out = run_mp(_PRE + """
req = bytearray(8)
rtu.build_request(req, 1, 4, 0, 2)
good = bytearray(b'\\x01\\x04\\x04\\x43\\x66\\x00\\x00\\x00\\x00')
rtu.append_crc(good, 7)
def scan(buf):
    r = rtu.scan(buf, len(buf), 1, 4, 2, req)
    return [r] if r < 0 else ['found', r, bool(buf[r + 1] & 0x80)]
res = {}
res['clean'] = scan(good)
res['garbage_first'] = scan(bytearray(b'\\x00\\xff\\x01\\x04\\x99') + good)
res['partial'] = scan(good[:5])
bad = bytearray(good); bad[-1] ^= 0xFF
res['bad_crc'] = scan(bad)
res['bad_then_good'] = scan(bad + good)
res['truncated_then_good'] = scan(good[:6] + good)
other = bytearray(good); other[0] = 2
res['other_slave'] = scan(other)
wrongcount = bytearray(b'\\x01\\x04\\x02\\x00\\x01\\x00\\x00'); rtu.append_crc(wrongcount, 5)
res['wrong_count'] = scan(wrongcount)
exc = bytearray(b'\\x01\\x84\\x02\\x00\\x00'); rtu.append_crc(exc, 3)
res['exception'] = scan(exc)
wrongfc = bytearray(good); wrongfc[1] = 3; rtu.append_crc(wrongfc, 7)    # an 03 answer to an 04 read
res['wrong_fc'] = scan(wrongfc)
otherexc = bytearray(exc); otherexc[0] = 2; rtu.append_crc(otherexc, 3)  # another slave's exception
res['other_slave_exception'] = scan(otherexc)
res['trailing_bytes'] = scan(good + bytearray(b'\\x01\\x04\\x00'))
print(json.dumps(res))
""")
    r = json.loads(out)
    NEED, BAD = -1, -2
    assert r["clean"] == ["found", 0, False]
    assert r["garbage_first"] == ["found", 5, False]
    assert r["partial"] == [NEED]
    assert r["bad_crc"] == [BAD]
    assert r["bad_then_good"] == ["found", 9, False]
    assert r["truncated_then_good"] == ["found", 6, False]
    assert r["other_slave"] == [NEED]
    assert r["wrong_count"] == [NEED]
    assert r["exception"] == ["found", 0, True]
    assert r["wrong_fc"] == [NEED]
    assert r["other_slave_exception"] == [NEED]
    assert r["trailing_bytes"] == ["found", 0, False]


def test_write_answers_must_echo_the_request():
    out = run_mp(_PRE + """
req = bytearray(8); rtu.build_request(req, 3, 6, 0x10, 1234)
echo = bytearray(req)
wrong = bytearray(8); rtu.build_request(wrong, 3, 6, 0x10, 999)
print(rtu.scan(echo, 8, 3, 6, 1234, req), rtu.scan(wrong, 8, 3, 6, 1234, req))
""")
    assert out.split() == ["0", "-1"]


def test_timing_constants():
    out = run_mp(_PRE + """
print(rtu.char_time_us(9600, 10), rtu.frame_gap_us(9600, 10), rtu.frame_gap_us(2400, 11),
      rtu.frame_gap_us(19200, 10), rtu.frame_gap_us(38400, 10), rtu.frame_gap_us(115200, 10))
""")
    # 9600 8N1: 1.04 ms a character, 3.65 ms gap (DOMAIN 5); fixed 1750 us above 19200 baud.
    assert out.split() == ["1042", "3646", "16042", "1823", "1750", "1750"]


def test_framing_allocates_nothing():
    out = run_mp(_PRE + """
import micropython
b = bytearray(256); rx = bytearray(64); regs = bytearray(0) 
from array import array
regs = array('H', bytes(250))
n = rtu.build_request(b, 1, 4, 0, 2)   # builds the CRC table (once)
f = bytearray(b'\\x01\\x04\\x04\\x43\\x66\\x00\\x00\\x00\\x00')
rtu.append_crc(f, 7)
ans = bytearray(b'\\x00\\x07') + f
micropython.heap_lock()
for i in range(20):
    n = rtu.build_request(b, 1, 4, 0, 2)
    r = rtu.scan(ans, 11, 1, 4, 2, b)
    rtu.decode_registers(ans, r, 2, regs)
micropython.heap_unlock()
print(r, regs[0], regs[1])
""")
    assert out.split() == ["2", str(0x4366), "0"]
