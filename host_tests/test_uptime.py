"""Months of uptime on the ESP32 (docs/uptime-audit.md): its ticks_ms() wraps at 2**30 ms
(~12.4 days) and ticks_diff() is right only below 2**29 ms (~6.2 days). These tests run the real
code with the ESP32's ticks (mp.ESP32_TICKS: the Unix port wraps at 2**62) on a ManualClock
started a minute before the wrap, and let days pass."""
import json

from mp import ESP32_TICKS, run_mp

_DAY_MS = 24 * 3600 * 1000

_APP = ESP32_TICKS + """
import json, time
from firmware.app import App
from firmware.board.unix import UnixBoard
from firmware.clock import ManualClock
%s
T0 = (1 << 30) - 60000          # a minute before the ticks wrap
clock = ManualClock(T0)
app = App(UnixBoard(%r), clock, subsystems=SUBSYSTEMS)
def w(path, body):
    app.registry.write(path, json.dumps(body))
def r(path):
    return app.registry.read(path)
def step(ms):
    # One control period of `ms` (the power manager takes up to an hour a step).
    clock.advance(ms)
    app.control.step(clock.ticks_ms(), ms)
"""


def _run(tmp_path, body, subsystems="SUBSYSTEMS = ()"):
    code = _APP % (subsystems, str(tmp_path)) + body
    return json.loads(run_mp(code, heap="2M", timeout=120).splitlines()[-1])


def test_a_silent_meter_stays_stale_for_weeks(tmp_path):
    # The grid meter (slot 0) and a meter no control input reads (slot 3) send one reading,
    # then fall silent. Days 6.2 to 12.4 read a negative age (not stale: "fresh" on the API,
    # MQTT and the display); 12.4 days after the reading its age reads as a few seconds again,
    # and the grid meter's 12-day-old reading counted as fresh for the control step and DLM.
    r = _run(tmp_path, """
w('meters/0/config', {'type': 1, 'value_ids': [74]})
w('meters/3/config', {'type': 1, 'value_ids': [74]})
w('meters/0/update', [-3000])
w('meters/3/update', [500])
t_read = clock.ticks_ms()
step(250)
first = [r('meters/0/state')['stale'], r('meters/3/state')['stale']]
fresh_hours = []           # hours after the reading at which the silent grid meter looked fresh
elapsed = 250
for h in range(1, 298):    # hourly, up to just before 2**30 ms
    step(3600000 - (250 if h == 1 else 0))
    elapsed = h * 3600000
    if not r('meters/0/state')['stale'] or app.pm.grid_age_ms <= app.pm.stale_ms:
        fresh_hours.append(h)
step((1 << 30) + 5000 - elapsed)     # 2**30 ms + 5 s after the reading: reads as 5 s old
print(json.dumps({'first': first, 'fresh_hours': fresh_hours,
  'grid': [r('meters/0/state')['stale'], app.pm.grid_age_ms > app.pm.stale_ms],
  'other': r('meters/3/state'), 'now': time.ticks_diff(clock.ticks_ms(), t_read)}))
""")
    assert r["first"] == [False, False]
    assert r["now"] == 5000                  # the ticks folded back to "5 s after the reading"
    assert r["fresh_hours"] == []
    assert r["grid"] == [True, True]
    assert r["other"]["stale"] is True and r["other"]["age_ms"] >= 3 * _DAY_MS


def test_a_slots_reading_count_stays_a_small_int(tmp_path):
    r = _run(tmp_path, """
w('meters/0/config', {'type': 1, 'value_ids': [74]})
app.slots[0].update_count = (1 << 30) - 1
w('meters/0/update', [-3000])
step(250)
fresh = app.pm.grid_fresh
w('meters/0/update', [-3000])
step(250)
print(json.dumps([app.slots[0].update_count, fresh, app.pm.grid_fresh]))
""")
    assert r == [1, True, True]


def test_system_uptime_counts_past_the_wrap(tmp_path):
    r = _run(tmp_path, """
for h in range(30 * 24):
    step(3600000)
step(250)
print(json.dumps(r('system/state')['uptime_ms']))
""")
    assert r == 30 * _DAY_MS + 250


def test_display_rotates_again_a_week_after_a_button_press(tmp_path):
    # The press holds the page for 30 s. The deadline was never forgotten: 6.2 days later
    # ticks_diff() read it as ahead again and the pages stopped rotating for 6.2 days.
    r = _run(tmp_path, """
t = app.display
btn = app.board.pin('button', out=False)
press = T0 + 1000
btn.value(1); t.poll_button(press); btn.value(0); t.poll_button(time.ticks_add(press, 50))
for s in range(1, 60):
    t.refresh(time.ticks_add(press, s * 1000))
pages = []
week = time.ticks_add(press, 7 * 24 * 3600 * 1000)
for s in range(30):
    t.refresh(time.ticks_add(week, s * 1000))
    pages.append(t.page)
print(json.dumps(pages))
""")
    assert len(set(r)) >= 3        # rotating: a new page every 5 s


def test_a_charger_gone_for_a_week_reads_as_long_gone(tmp_path):
    # last_seen_age_ms of a wallbox that stopped answering read negative after 6.2 days.
    r = _run(tmp_path, """
sim = app.chargers[0]
sim.exchange(clock.ticks_ms())
step(250)
sim.dead = True
ages = []
for h in range(8 * 24):
    step(3600000)
    sim.exchange(clock.ticks_ms())
    ages.append(r('charge_manager/state')['chargers'][0]['last_seen_age_ms'])
print(json.dumps({'ages': ages, 'reachable': sim.reachable}))
""", "from tools.simsite.wiring import make_installer\nSUBSYSTEMS = (make_installer(None),)")
    assert r["reachable"] is False
    assert min(r["ages"]) >= 3600000
    assert r["ages"][-1] >= 3 * _DAY_MS


_BUS = ESP32_TICKS + """
import asyncio, json, time
from firmware.clock import ManualClock
from firmware.modbus import rtu
from firmware.modbus.bus import ModbusBus, ModbusError
clock = ManualClock((1 << 30) - 60000)
class Uart:
    # Slave 5 answers every read of one register with 0x1234.
    rx = b''
    def write(self, b):
        ans = bytearray(b'\\x05\\x04\\x02\\x12\\x34\\x00\\x00')
        rtu.append_crc(ans, 5)
        self.rx = bytes(ans)
    def readinto(self, buf):
        n = len(self.rx)
        buf[:n] = self.rx
        self.rx = b''
        return n
    def close(self):
        pass
opens = []
def open_uart():
    opens.append(clock.ticks_ms())
    if len(opens) == 1 and FIRST_OPEN_FAILS:
        raise OSError('no such port')
    return Uart()
bus = ModbusBus(open_uart, clock, timeout_ms=200, retries=0, gap_ms=5)
async def read():
    t = clock.ticks_ms()
    try:
        v = hex((await bus.read_input(5, 0, 1))[0])
    except ModbusError as e:
        v = type(e).__name__
    return [v, time.ticks_diff(clock.ticks_ms(), t)]
"""


def _bus(body, first_open_fails=False):
    code = "FIRST_OPEN_FAILS = %s\n" % first_open_fails + _BUS + body
    return json.loads(run_mp(code, timeout=60).splitlines()[-1])


# One request, a week without traffic, another: [first, second, port opens], each request as
# [answer or error name, ms it took].
_WEEK_APART = """
async def main():
    a = await read()
    clock.advance(7 * 24 * 3600 * 1000)
    b = await read()
    print(json.dumps([a, b, len(opens)]))
asyncio.run(main())
"""


def test_bus_answers_at_once_after_a_week_of_silence():
    # The first request after a week without traffic waited out the "gap" to a stamp that
    # ticks_diff() read as 6 days ahead: up to 6.2 days of no readings.
    r = _bus(_WEEK_APART)
    assert r[0][0] == r[1][0] == "0x1234"
    assert r[1][1] < 1000, r


def test_bus_retries_a_failed_port_a_week_later():
    # The port could not be opened, then the bus was idle for a week: the 2-s reopen delay read
    # the old failure as in the future and refused to try for up to 6.2 more days.
    r = _bus(_WEEK_APART, first_open_fails=True)
    assert [r[0][0], r[1][0], r[2]] == ["ModbusPortError", "0x1234", 2]


def test_bus_counters_stay_small_ints():
    # On the ESP32 an int above 2**30 - 1 is a heap object: after ~1e9 transactions (months
    # on a busy bus) every count allocated. The counters restart from 0 together instead.
    r = _bus("""
async def main():
    await read()
    bus.transactions = (1 << 30) - 1
    st = bus._stats[5]
    st[0] = st[1] = (1 << 30) - 1
    await read()
    print(json.dumps([bus.transactions, bus.stats(5)]))
asyncio.run(main())
""")
    assert r[0] == 1
    assert r[1]["requests"] == 1 and r[1]["ok"] == 1, r
