"""The Modbus RTU master on the Unix port against a real peer: a pymodbus RTU server on a socat pty
pair (tools/meter_sim.py), with a raw-bytes proxy injecting faults."""
import json
import struct
import textwrap
import time

import pytest

from mp import run_mp
from rtu_peer import Peer

_MP = """
import asyncio, time, json, gc
from firmware.clock import Clock
from firmware.modbus.bus import ModbusBus
from firmware.modbus.bus import ModbusError, ModbusException
from firmware.board.unix_uart import open_uart
bus = ModbusBus(lambda: open_uart(%r), Clock(), timeout_ms=%d, retries=%d, gap_ms=%d)
out = []
async def attempt(coro):
    try:
        r = await coro
        return list(r) if r is not None else 'ok'
    except ModbusException as e:
        return 'exc%%d' %% e.code
    except ModbusError as e:
        return type(e).__name__
async def body():
%s
async def main():
    await body()
    print(json.dumps(out))
asyncio.run(main())
"""


def run_bus(peer, body, timeout_ms=300, retries=0, gap_ms=2):
    # Timeouts are generous: the peer is CPython threads on a busy 2-core machine.
    code = _MP % (peer.a, timeout_ms, retries, gap_ms, textwrap.indent(textwrap.dedent(body), "    "))
    return json.loads(run_mp(code, timeout=60).strip().splitlines()[-1])


@pytest.fixture
def peer(tmp_path):
    p = Peer(tmp_path, {1: "sdm630", 2: "em24"})
    yield p
    p.close()


def _f32(regs):
    return struct.unpack(">f", struct.pack(">HH", *regs))[0]


def test_reads_writes_and_changing_values(peer):
    peer.meters[1].power_w = 4200.0
    out = run_bus(peer, """
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
        out.append(await attempt(bus.read_holding(1, 0xFC02, 1)))
        out.append(await attempt(bus.write_single(1, 3, 0xBEEF)))
        out.append(await attempt(bus.write_multiple(1, 5, [1, 2, 65535])))
        out.append(await attempt(bus.read_holding(1, 3, 5)))
        out.append(await attempt(bus.read_input(2, 0x28, 2)))
        out.append(bus.stats(1))
    """)
    assert _f32(out[0]) == 4200.0
    assert out[1] == [0x70]
    assert out[2] == "ok" and out[3] == "ok"
    assert out[4] == [0xBEEF, 0, 1, 2, 65535]
    assert out[5] == [15000, 0]  # EM24: int32 low word first, W x0.1
    assert out[6]["ok"] == 5 and out[6]["timeouts"] == 0


def test_values_change_while_polled(peer):
    import threading
    peer.meters[1].power_w = 100.0

    def later():
        # Changed once the firmware has been reading for a while (not after a fixed time: on a
        # loaded machine micropython may not even have started by then).
        deadline = time.monotonic() + 30
        while peer.proxy.requests < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        peer.meters[1].power_w = -2500.0
    threading.Thread(target=later, daemon=True).start()
    out = run_bus(peer, """
        seen = []
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < 20000:
            r = await bus.read_input(1, 0x34, 2)
            seen.append((r[0] << 16) | r[1])
            if seen[-1] != seen[0] and len(seen) >= 8:
                break  # changed, and seen a few times since
        out.append(seen)
    """)
    vals = [_f32((v >> 16, v & 0xFFFF)) for v in out[0]]
    assert vals[0] == 100.0 and vals[-1] == -2500.0


def test_unknown_slave_is_silent_and_times_out(peer):
    out = run_bus(peer, """
        t = time.ticks_ms()
        out.append(await attempt(bus.read_input(9, 0, 2)))
        out.append(time.ticks_diff(time.ticks_ms(), t))
        out.append(bus.stats(9))
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
    """, timeout_ms=100, retries=1)
    assert out[0] == "ModbusTimeout"
    assert out[1] >= 200  # two attempts of >= 100 ms: the pymodbus server really stayed silent
    assert out[2]["timeouts"] == 2 and out[2]["retries"] == 1 and out[2]["requests"] == 1
    assert len(out[3]) == 2


def test_exception_answers(peer):
    peer.fault("exception", 1)
    out = run_bus(peer, """
        out.append(await attempt(bus.read_input(1, 0x34, 2)))  # proxy answers exception 2
        out.append(await attempt(bus.read_input(2, 0, 20)))   # EM24 rejects > 11 registers
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
        out.append(bus.stats(2))
        out.append(bus.stats(1))
    """, retries=2)
    assert out[0] == "exc2"
    assert out[1] == "exc3"
    assert len(out[2]) == 2
    assert out[3]["exceptions"] == 1 and out[3]["last_exception"] == 3
    assert out[4]["exceptions"] == 1 and out[4]["retries"] == 0  # an exception is not retried


@pytest.mark.parametrize("mode,error,counter", [
    ("bad_crc", "ModbusCrcError", "crc_errors"),
    ("truncate", "ModbusFrameError", "frame_errors"),
    ("garbage_only", "ModbusFrameError", "frame_errors"),
    ("silent", "ModbusTimeout", "timeouts"),
    ("slow", "ModbusTimeout", "timeouts"),
])
def test_faults_are_reported_then_recovered(peer, mode, error, counter):
    peer.proxy.slow_ms = 700  # well past the 300 ms timeout
    peer.fault(mode, 1)
    out = run_bus(peer, """
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
        await asyncio.sleep_ms(%d)  # let a slow answer pass
        out.append(await attempt(bus.read_input(1, 0x06, 6)))
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
        out.append(bus.stats(1))
    """ % (800 if mode == "slow" else 20))
    assert out[0] == error
    assert len(out[1]) == 6 and len(out[2]) == 2
    assert out[3][counter] == 1


@pytest.mark.parametrize("mode", ["bad_crc", "truncate", "silent"])
def test_a_retry_hides_a_single_fault(peer, mode):
    peer.fault(mode, 1)
    out = run_bus(peer, """
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
        out.append(bus.stats(1))
    """, retries=1)
    assert len(out[0]) == 2
    assert out[1]["retries"] == 1 and out[1]["ok"] == 1


@pytest.mark.parametrize("mode", ["stray", "stutter"])
def test_garbage_or_a_truncated_frame_in_front_loses_nothing(peer, mode):
    peer.fault(mode)  # garbage, or half a frame, right in front of every answer
    out = run_bus(peer, """
        for i in range(10):
            out.append(await attempt(bus.read_input(1, 0x34, 2)))
        out.append(bus.stats(1))
    """)
    assert all(len(r) == 2 for r in out[:10])
    assert out[10]["ok"] == 10 and out[10]["retries"] == 0


def test_gap_between_requests(peer):
    out = run_bus(peer, """
        t = time.ticks_ms()
        for i in range(6):
            await bus.read_input(1, 0x34, 2)
        out.append(time.ticks_diff(time.ticks_ms(), t))
    """, gap_ms=80)
    assert out[0] >= 5 * 80


def test_missing_port_is_an_error_not_a_crash(tmp_path):
    code = _MP % (str(tmp_path / "nope"), 100, 0, 2, textwrap.indent(textwrap.dedent("""
        out.append(await attempt(bus.read_input(1, 0, 2)))
        out.append(bus.port_error is not None)
    """), "    "))
    out = json.loads(run_mp(code).strip().splitlines()[-1])
    assert out == ["ModbusPortError", True]


def test_polling_does_not_grow_the_heap(peer):
    out = run_bus(peer, """
        async def poll(n):
            for i in range(n):
                r = await bus.read_input(1, 0, 18)
                r = await bus.read_input(1, 0x34, 2)
        await poll(30)
        gc.collect(); before = gc.mem_alloc()
        await poll(150)
        gc.collect(); after = gc.mem_alloc()
        out.append(after - before)
    """)
    assert out[0] <= 64


def test_a_cancelled_request_leaves_the_bus_quiet_then_usable(peer):
    # A wallbox task cancelled on a config change, its answer still on the way: the bus lock is
    # released and the next request waits a response timeout instead of talking into the answer.
    peer.proxy.slow_ms = 150
    peer.fault("slow", 1)
    out = run_bus(peer, """
        t = asyncio.create_task(bus.read_input(1, 0x34, 2))
        await asyncio.sleep_ms(50)
        t.cancel()
        await asyncio.sleep_ms(0)
        t0 = time.ticks_ms()
        out.append(await attempt(bus.read_input(1, 0x34, 2)))
        out.append(time.ticks_diff(time.ticks_ms(), t0))
        out.append(bus.stats(1))
    """)
    assert len(out[0]) == 2
    assert out[1] >= 250  # the 300 ms response timeout from the cancel, less the 50 ms waited
    assert out[2]["requests"] == 2 and out[2]["ok"] == 1 and out[2]["crc_errors"] == 0


@pytest.mark.parametrize("retries", [0, 1])
def test_a_late_answer_is_not_taken_for_the_next_request(tmp_path, retries):
    # A meter answers once after the response timeout. That answer (with a retry: the answer to
    # the retry, the late one having served it) is still on its way when the transaction ends.
    # RTU answers carry no request id: the next request, reading another register of the same
    # size from the same meter, would take it for its own (the total power read as L1's
    # voltage). The bus keeps the line quiet for a response timeout first.
    peer = Peer(tmp_path, {1: "sdm630"}, delay_ms=30)  # every answer 30 ms after its request
    try:
        peer.meters[1].power_w = 4200.0
        peer.proxy.slow_ms = 320  # the first answer comes ~40 ms after the 300 ms timeout
        peer.fault("slow", 1)
        out = run_bus(peer, """
            out.append(await attempt(bus.read_input(1, 0x34, 2)))   # total power
            out.append(await attempt(bus.read_input(1, 0x00, 2)))   # L1 voltage
            out.append(await attempt(bus.read_input(1, 0x34, 2)))
            out.append(bus.stats(1))
        """, timeout_ms=300, retries=retries)
    finally:
        peer.close()
    if retries:
        assert _f32(out[0]) == pytest.approx(4200.0)  # the late answer served the retry
    else:
        assert out[0] == "ModbusTimeout"
    assert _f32(out[1]) == pytest.approx(230.0), out
    assert _f32(out[2]) == pytest.approx(4200.0), out
    assert out[3]["timeouts"] == 1


def test_a_line_that_never_falls_silent_ends_the_request_and_yields():
    # Noise, or a second master talking on the bus: bytes keep coming faster than they are
    # scanned, none of them our answer. The request must still end at its response timeout (a
    # frame error), and the event loop must keep running meanwhile (the control task; on the
    # board the watchdog would reset a stalled loop).
    out = run_mp("""
import asyncio, json
from firmware.clock import Clock
from firmware.modbus.bus import ModbusBus, ModbusError
class Noise:
    reads = 0
    def readinto(self, buf):
        self.reads += 1
        for i in range(len(buf)):
            buf[i] = 0x01 if i % 3 else 0x04    # our slave id and function code, never a frame
        return len(buf)
    def write(self, buf):
        pass
    def close(self):
        pass
noise = Noise()
bus = ModbusBus(lambda: noise, Clock(), timeout_ms=100, retries=1, gap_ms=2)
ticks = [0]
async def ticker():
    while True:
        await asyncio.sleep_ms(5)
        ticks[0] += 1
async def main():
    asyncio.create_task(ticker())
    t = time.ticks_ms()
    try:
        await bus.read_input(1, 0, 2)
        r = 'ok'
    except ModbusError as e:
        r = type(e).__name__
    print(json.dumps([r, time.ticks_diff(time.ticks_ms(), t), ticks[0], bus.stats(1)]))
import time
asyncio.run(main())
""", timeout=20)
    r, took_ms, ticks, st = json.loads(out.strip().splitlines()[-1])
    # (Chunk boundaries make some candidates whose CRC fails: a frame or a CRC error.)
    assert r in ("ModbusFrameError", "ModbusCrcError") and st["frame_errors"] + st["crc_errors"] == 2
    assert took_ms < 2000, took_ms
    assert ticks >= took_ms // 5 // 4, (ticks, took_ms)  # the ticker ran all along
