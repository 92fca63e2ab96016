"""Meter register tables against a real peer: every model simulated by tools/meter_sim.py (its own,
independent register maps), read by the firmware's plan + decoder through the Modbus bus."""
import json
import subprocess
import textwrap

import pytest

from mp import run_mp
from rtu_peer import Peer

_PLAN = """
import json
from firmware.meters import models
from firmware.meters.plan import plan
from firmware.meters.rs485 import MODEL_NAMES
out = {}
for name in sorted(models.MODELS):
    ids, fc, reads, n_values, n_public, sign = plan(name)
    out[name] = {"ids": ids, "fast": [[r[0], r[1]] for r in reads if not r[2]],
                 "slow": [[r[0], r[1]] for r in reads if r[2]],
                 "max": models.MODELS[name][1]}
print(json.dumps([out, list(MODEL_NAMES)]))
"""


def test_plans_use_few_requests_within_limits():
    plans, names = json.loads(run_mp(_PLAN))
    # The names meters/N/config accepts (known at start, before models.py is imported).
    assert names == sorted(plans) + ["eastron"]
    three_phase = [1, 2, 3, 14, 18, 22, 74, 209, 211]
    for name, p in plans.items():
        assert p["ids"] == ([1, 14, 74, 209, 211] if name == "sdm120" else three_phase), name
        for addr, count in p["fast"] + p["slow"]:
            assert count <= p["max"], name
    # SDM630: currents (+ phase powers for their sign) in one read, total power in a second
    # (DOMAIN 5); voltages and energies every 10th poll.
    assert plans["sdm630"]["fast"] == [[0x06, 12], [0x34, 2]]
    assert plans["sdm630"]["slow"] == [[0x00, 6], [0x48, 4]]
    assert plans["sdm120"]["fast"] == [[0x06, 8]]
    assert plans["dtsu666"]["fast"] == [[0x200C, 14]]
    assert len(plans["abb_b2x"]["fast"]) == 1
    assert len(plans["em24"]["fast"]) <= 3  # 11-register reads


# A bus on the peer's pty (%r: its path) and the classes a poll script needs.
_BUS_HEAD = """
import asyncio, json
from firmware.clock import Clock
from firmware.modbus.bus import ModbusBus, ModbusError
from firmware.board.unix_uart import open_uart
from firmware.meters.slots import MeterSlot
from firmware.meters.rs485_poll import Rs485Meter
bus = ModbusBus(lambda: open_uart(%r), Clock(), timeout_ms=300, retries=1)
class Cfg(dict):
    pass
"""

_POLL = _BUS_HEAD + """
async def main():
    res = {}
    for slave, model in %r:
        slot = MeterSlot(0)
        m = Rs485Meter(slot, Cfg(slave_id=slave, model=model), bus)
        t0 = bus.transactions
        await m.poll(lambda: 1)
        first = bus.transactions - t0
        t0 = bus.transactions
        await m.poll(lambda: 2)
        res[str(slave)] = {"values": {str(k): slot.values[i] for i, k in enumerate(slot.value_ids)},
                           "model": m.model, "first": first, "next": bus.transactions - t0}
    print(json.dumps(res))
asyncio.run(main())
"""

ALL = {1: "sdm630", 2: "sdm72dm2", 3: "sdm120", 4: "em24", 5: "em340", 6: "dtsu666",
       7: "abb_b2x"}


@pytest.fixture(scope="module")
def bus_peer(tmp_path_factory):
    p = Peer(tmp_path_factory.mktemp("models"), ALL)
    yield p
    p.close()


def _close(a, b):
    return abs(a - b) <= max(0.02, abs(b) * 2e-3)


def test_every_model_reads_signed_values(bus_peer):
    for sid, st in bus_peer.meters.items():
        if st.phases == 3:
            st.phase_w = [-1000.0, -1500.0, 155.0]  # exporting on L1, L2; importing on L3
        else:
            st.power_w = -1234.5
    out = json.loads(run_mp(_POLL % (bus_peer.a, sorted(ALL.items()))))
    for sid, model in ALL.items():
        got = out[str(sid)]
        want = bus_peer.meters[sid].expected()
        assert got["model"] == model
        assert set(got["values"]) == {str(k) for k in want}, model
        for k, v in want.items():
            assert _close(got["values"][str(k)], v), (model, k, got["values"][str(k)], v)
        assert got["next"] < got["first"] or model == "sdm120" or got["first"] == got["next"]
    assert out["1"]["values"]["14"] < 0 and out["1"]["values"]["22"] > 0
    assert out["1"]["next"] == 2 and out["1"]["first"] == 4  # energies are read every 10th poll


def test_a_read_longer_than_the_meter_accepts_is_split(bus_peer):
    # A unit that answers "illegal data value" (exception 3) to a read longer than it accepts
    # (the EM24 above 11 registers; EM340, DTSU666 and ABB document no limit) was never read:
    # every poll failed and the slot stayed stale. The merged read is split, as for exception 2.
    em340 = bus_peer.meters[5]
    limit = em340.max_regs
    em340.max_regs = 8                  # our EM340 plan reads up to 30 registers at once
    try:
        out = json.loads(run_mp(_POLL % (bus_peer.a, [(5, "em340")])))["5"]
    finally:
        em340.max_regs = limit
    want = em340.expected()
    assert set(out["values"]) == {str(k) for k in want}
    for k, v in want.items():
        assert _close(out["values"][str(k)], v), (k, out["values"][str(k)], v)
    assert out["next"] > 2, out         # one read per value now


def test_eastron_autodetect(bus_peer):
    out = json.loads(run_mp(_POLL % (bus_peer.a, [(2, "eastron"), (1, "eastron")])))
    assert out["2"]["model"] == "sdm72dm2"
    assert out["1"]["model"] == "sdm630"
    assert _close(out["2"]["values"]["74"], bus_peer.meters[2].expected()[74])


def test_mbpoll_reads_what_the_firmware_reads(bus_peer):
    # Cross-check against an independent Modbus master: mbpoll reads the SDM630's total power.
    bus_peer.meters[1].phase_w = None
    bus_peer.meters[1].power_w = 3210.5
    proc = subprocess.run(
        ["mbpoll", "-m", "rtu", "-a", "1", "-b", "9600", "-P", "none", "-t", "3:float", "-B",
         "-0", "-r", str(0x34), "-c", "1", "-1", "-o", "1", bus_peer.a],
        capture_output=True, text=True, timeout=20)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("[52]")]
    assert line, proc.stdout + proc.stderr
    mb_value = float(line[0].split()[1])
    out = json.loads(run_mp(_POLL % (bus_peer.a, [(1, "sdm630")])))
    assert mb_value == 3210.5
    assert out["1"]["values"]["74"] == mb_value


def test_poll_counters_stay_small_ints(bus_peer):
    # On the ESP32 an int of 2**30 or more is a heap object: after ~1.7 years of 50 ms polls
    # (or a decade of failures) every count would allocate. Both counters wrap below 2**30.
    out = json.loads(run_mp((_BUS_HEAD + """
async def main():
    m = Rs485Meter(MeterSlot(0), Cfg(slave_id=1, model="sdm630"), bus)
    await m.poll(lambda: 1)
    m.polls = (1 << 30) - 1
    await m.poll(lambda: 2)
    m.failures = (1 << 30) - 1
    m.failed("TimeoutError: no answer")
    print(json.dumps([m.polls, m.failures, m.last_error]))
asyncio.run(main())
""") % bus_peer.a))
    assert out == [0, 0, "TimeoutError: no answer"]


def test_decoding_encodings_and_invalid_markers():
    out = run_mp("""
import json
from firmware.meters import models as m
from firmware.meters.rs485_poll import decode_field
res = [
    decode_field([0x4366, 0x0000], 0, m.F32, 1.0),            # 230.0
    decode_field([0x7FC0, 0x0000], 0, m.F32, 1.0),            # NaN -> None
    decode_field([0xFC18, 0xFFFF], 0, m.S32L, 0.1),           # -1000 (low word first) x0.1
    decode_field([0xFFFF, 0xFFFF], 0, m.U32, 0.01),           # ABB invalid
    decode_field([0x0000, 0x5DC0], 0, m.U32, 0.01),           # 240.0
    decode_field([0xFFFF, 0xFC18], 0, m.S32, 0.01),           # -10.0
    decode_field([0x7FFF, 0xFFFF], 0, m.S32, 0.01),           # ABB invalid
    decode_field([0, 0, 0x0001, 0x86A0], 0, m.U64, 0.01),     # 1000.0
    decode_field([0xFFFF] * 4, 0, m.U64, 0.01),               # ABB invalid
]
print(json.dumps(res))
""")
    r = json.loads(out)
    assert r[0] == 230.0 and r[1] is None
    assert abs(r[2] + 100.0) < 1e-9
    assert r[3] is None and abs(r[4] - 240.0) < 1e-9 and abs(r[5] + 10.0) < 1e-9
    assert r[6] is None and abs(r[7] - 1000.0) < 1e-9 and r[8] is None


def test_an_exception_on_a_slow_read_keeps_the_meter_usable(bus_peer):
    # Fast reads (2) pass, the voltage read gets "device failure": voltages null, the
    # reading still counts (a meter variant without those registers).
    bus_peer.meters[1].phase_w = None
    bus_peer.meters[1].power_w = 999.0
    bus_peer.proxy.script = [(None, 2), ("exception", 1)]
    bus_peer.proxy.exception_code = 4  # device failure (2 would mean: no such registers)
    try:
        out = json.loads(run_mp(_POLL % (bus_peer.a, [(1, "sdm630")])))
    finally:
        bus_peer.proxy.exception_code = 2
    vals = out["1"]["values"]
    assert vals["1"] is None and vals["2"] is None and vals["74"] == 999.0
    assert vals["209"] == bus_peer.meters[1].e_in_kwh or abs(vals["209"] - 1234.5) < 0.01
    assert bus_peer.proxy.script == []


# --- docs/meters-audit.md: the tables against the manufacturers' documents -------------------

def test_abb_signed_all_ones_is_minus_one_not_invalid():
    # ABB B23/B24 (manual 2CMC485003M0201, Modbus mapping; openWB's B23 module agrees): "not
    # available" is 0x7FFFFFFF for a signed 32-bit value and all ones only for unsigned ones. An
    # answer to 03 0x5B14 x8 (total and L1..L3 active power, S32 x0.01 W), built by hand:
    # 01 03 10 | FF FF FF FF | 7F FF FF FF | 00 00 03 E8 | FF FF FC 18 | CRC
    answer = bytes.fromhex("010310" "FFFFFFFF" "7FFFFFFF" "000003E8" "FFFFFC18")
    regs = [answer[3 + 2 * i] << 8 | answer[4 + 2 * i] for i in range(8)]
    out = json.loads(run_mp("""
import json
from firmware.meters import models as m
from firmware.meters.rs485_poll import decode_field
regs = %r
print(json.dumps([decode_field(regs, off, m.S32, 0.01) for off in (0, 2, 4, 6)]))
""" % regs))
    assert out[0] is not None and abs(out[0] + 0.01) < 1e-9   # -1 x 0.01 W: a value
    assert out[1] is None                                      # 0x7FFFFFFF: not available
    assert abs(out[2] - 10.0) < 1e-9 and abs(out[3] + 10.0) < 1e-9


# The longest read each manufacturer documents (None: the document found gives no number).
_DOCUMENTED_MAX_REGS = {
    "sdm630": 80,    # SDM630 Modbus protocol 1.2: 40 parameters, "maximum ... requestable is 80"
    "sdm72dm2": 60,  # Eastron SDM72 manuals, PART 3: "restricted to 30 parameters or less"
    "sdm120": 80,    # SDM120 Modbus protocol: 40 parameters
    "em24": 11,      # EM24-DIN protocol 1.2.2: "maximum 11 register (word) with a single request"
}


def test_read_limits_follow_the_documents():
    plans, _ = json.loads(run_mp(_PLAN))
    for model, limit in _DOCUMENTED_MAX_REGS.items():
        assert plans[model]["max"] == limit, model
    # The simulator refuses longer reads as the documents say the meters do.
    import meter_sim
    for model, limit in _DOCUMENTED_MAX_REGS.items():
        assert meter_sim.SIM_MODELS[model]["max_regs"] == limit, model


_PROBE_POLL = _BUS_HEAD + """
async def main():
    slot = MeterSlot(0)
    m = Rs485Meter(slot, Cfg(slave_id=%d, model=%r), bus)
    try:
        await m.poll(lambda: 1)
        err = None
    except ModbusError as e:
        err = str(e)
    print(json.dumps([err, slot.update_count, slot.get(74)]))
asyncio.run(main())
"""


@pytest.mark.parametrize("sid,model,reg,bad,good", [
    (4, "em24", 0x1101, 0, 7),    # application A: export not negative; H: bidirectional
    (5, "em340", 0x1103, 0, 1),   # measurement mode A ("easy connection"); b: bidirectional
])
def test_carlo_gavazzi_setup_that_hides_export_is_refused(bus_peer, sid, model, reg, bad, good):
    st = bus_peer.meters[sid]
    st.phase_w = None
    st.power_w = -1500.0
    try:
        st.setup[reg] = bad
        err, count, power = json.loads(run_mp(_PROBE_POLL % (bus_peer.a, sid, model)))
        assert err is not None and ("0x%X" % reg) in err, err
        assert count == 0 and power is None   # no reading: the slot goes stale, not "0 W"
        st.setup[reg] = good
        err, count, power = json.loads(run_mp(_PROBE_POLL % (bus_peer.a, sid, model)))
        assert err is None and count == 1 and abs(power + 1500.0) < 0.2
    finally:
        st.setup[reg] = good
