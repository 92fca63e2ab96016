"""The phase switching sequence (firmware/control/phase_switch.py) on the Unix port."""
import json

from mp import run_mp

# A tiny simulated site: a contactor whose auxiliary contact follows the relay after
# `lag_ms` (or sticks), and a car that stops drawing `stop_ms` after being held at 0 A.
_SIM = """
import json
from firmware.control.phase_switch import *
class Site:
    def __init__(self, ps, lag_ms=100, stop_ms=2000, stuck=None, feedback=True):
        self.ps = ps; self.lag_ms = lag_ms; self.stop_ms = stop_ms; self.stuck = stuck
        self.contact = ps.relay_3p; self.pending_ms = -1; self.last_relay = ps.relay_3p
        self.drawing = True; self.zero_ms = 0; self.t = 0; self.trace = []
        self.has_fb = feedback; self.toggled_under_load = 0
    def fb(self):
        return (1 if self.contact else 0) if self.has_fb else -1
    def tick(self, dt):
        ps = self.ps
        self.t += dt
        if ps.hold_zero:
            self.zero_ms += dt
            if self.stop_ms is not None and self.zero_ms >= self.stop_ms:
                self.drawing = False
        else:
            self.zero_ms = 0
            self.drawing = True
        s = ps.step(dt, self.drawing, self.fb())
        if ps.relay_3p != self.last_relay:
            if self.drawing:
                self.toggled_under_load += 1
            self.last_relay = ps.relay_3p
            self.pending_ms = self.lag_ms
        if self.pending_ms >= 0:
            self.pending_ms -= dt
            if self.pending_ms < 0 and self.stuck is None:
                self.contact = ps.relay_3p
        if not self.trace or self.trace[-1][1] != s:
            self.trace.append((self.t, s))
        return s
    def run(self, ms, dt=250):
        for _ in range(ms // dt):
            self.tick(dt)
"""


def _run(body):
    out = run_mp(_SIM + body)
    return [json.loads(line) for line in out.splitlines() if line.startswith(("{", "["))]


def test_full_sequence_step_by_step():
    (r,) = _run("""
ps = PhaseSwitch(cp_off_ms=10000, min_interval_ms=30000)
ps.restore(False, 0)
site = Site(ps)
site.run(3000)
ok = ps.request(True)
cp_ms = 0; hold_ms = 0
for _ in range(200):
    site.tick(250)
    if ps.cp_disconnect: cp_ms += 250
    if ps.hold_zero: hold_ms += 250
print(json.dumps({'ok': ok, 'trace': site.trace, 'is3': ps.is_3phase, 'relay': ps.relay_3p,
  'res': ps.last_result, 'err': ps.error, 'under_load': site.toggled_under_load,
  'cp_ms': cp_ms, 'hold_ms': hold_ms, 'hold': ps.hold_zero, 'cp': ps.cp_disconnect}))
""")
    assert r["ok"]
    states = [s for _, s in r["trace"]]
    assert states == [0, 1, 2, 3, 4, 5, 0]
    assert r["is3"] and r["relay"] and r["res"] == 1 and r["err"] == 0
    assert r["under_load"] == 0
    # The pilot stays disconnected for the configured CP-off time (to the step).
    assert 10000 <= r["cp_ms"] <= 10500
    assert not r["hold"] and not r["cp"]
    # Stopping lasted until the car stopped drawing (2 s), not shorter.
    t = dict((s, t) for t, s in r["trace"])
    assert t[3] - t[1] >= 1750  # hold began with the request, 250 ms before


def test_cp_off_time_configurable_and_no_cp_support():
    (r,) = _run("""
res = {}
for cp in (10000, 120000):
    ps = PhaseSwitch(cp_off_ms=cp); ps.restore(False, 0); site = Site(ps); site.run(2000)
    ps.request(True)
    n = 0
    while ps.state != 0 and n < 10000:
        site.tick(250); n += 1
    res[str(cp)] = n * 250
ps = PhaseSwitch(cp_off_ms=60000); ps.restore(True, 1); site = Site(ps); site.run(2000)
ps.request(False, cp_supported=False)
site.run(20000)
res['nocp'] = [s for _, s in site.trace]
res['nocp_3p'] = ps.is_3phase
print(json.dumps(res))
""")
    assert 12000 <= r["10000"] <= 13500
    assert 122000 <= r["120000"] <= 123500
    assert r["nocp"] == [0, 1, 2, 4, 5, 0]
    assert r["nocp_3p"] is False


def test_car_keeps_drawing_aborts_without_toggling():
    (r,) = _run("""
ps = PhaseSwitch(cp_off_ms=10000, min_interval_ms=30000)
ps.restore(True, 1)
site = Site(ps, stop_ms=None)   # this car never stops
site.run(2000)
ps.request(False)
site.run(20000)
again = ps.request(False)       # too soon after the aborted attempt
site.run(30000)
later = ps.state
print(json.dumps({'trace': site.trace, 'res': ps.last_result, 'relay': ps.relay_3p,
  'is3': ps.is_3phase, 'under_load': site.toggled_under_load, 'hold': ps.hold_zero,
  'again': again, 'err': ps.error, 'cp': ps.cp_disconnect}))
""")
    assert [s for _, s in r["trace"]] == [0, 1, 2, 0]
    assert r["res"] == 2  # RESULT_ABORTED_CAR_DRAWS
    assert r["relay"] is True and r["is3"] is True and r["under_load"] == 0
    assert r["hold"] is False and r["err"] == 0 and r["cp"] is False
    assert r["again"] is False
    # Stopping gave up after the stop timeout (15 s), not at once and not never.
    t = dict((s, t) for t, s in r["trace"])
    assert 14000 <= [x for x, s in r["trace"] if s == 0][-1] - t[2] <= 16000


def test_current_reappearing_before_toggle_goes_back_to_stopping():
    (r,) = _run("""
ps = PhaseSwitch(cp_off_ms=10000); ps.restore(False, 0)
trace = []
ps.request(True)
for drawing in (True, True, False, True, False, False, False, False, False, False, False):
    trace.append(ps.step(250, drawing, 0 if not ps.relay_3p else 1))
print(json.dumps({'trace': trace, 'relay': ps.relay_3p}))
""")
    # 1 -> 2 (drawing) -> 3 (stopped) -> back to 2 (drawing again) -> 3 -> ... -> 4 -> 5
    assert r["trace"][:5] == [1, 2, 3, 2, 3]
    assert 4 in r["trace"]
    assert r["trace"][-1] == 5 and r["relay"] is True


def test_flickering_current_reading_aborts_instead_of_holding_zero_for_ever():
    # A reading that flickers around the 1 A threshold (current one step in four) sent the
    # sequence from Disconnecting CP back to Stopping with a fresh 15 s each time: 0 A for the
    # chargers for as long as the flicker lasted (150 s here), the switch never done.
    (r,) = _run("""
ps = PhaseSwitch(cp_off_ms=10000); ps.restore(False, 0)
ps.request(True)
states = []
for i in range(600):
    states.append(ps.step(250, i % 4 == 0, 0))
print(json.dumps({'end': states.index(0) * 250 if 0 in states else None, 'res': ps.last_result,
  'hold': ps.hold_zero, 'relay': ps.relay_3p, 'toggled': 4 in states}))
""")
    assert r["end"] is not None and 14000 <= r["end"] <= 17000
    assert r["res"] == 2 and r["hold"] is False and r["relay"] is False
    assert r["toggled"] is False


def test_stuck_contactor_latches_error_until_cleared():
    (r,) = _run("""
ps = PhaseSwitch(cp_off_ms=10000); ps.restore(False, 0)
site = Site(ps, stuck=True)
site.run(2000)
ps.request(True)
site.run(30000)
a = {'err': ps.error, 'hold': ps.hold_zero, 'res': ps.last_result, 'state': ps.state,
     'is3': ps.is_3phase, 'trace': [s for _, s in site.trace], 'cp': ps.cp_disconnect}
blocked = ps.request(True)
site.run(60000)
a['still'] = ps.error
ps.clear_error()          # cleared, but the contact still disagrees -> latches again
site.run(3000)
a['relatch'] = ps.error
site.stuck = None; site.contact = ps.relay_3p   # repaired
ps.clear_error()
site.run(5000)
a['after_fix'] = [ps.error, ps.hold_zero, ps.is_3phase]
a['blocked'] = blocked
print(json.dumps(a))
""")
    assert r["err"] == 1 and r["hold"] is True and r["res"] == 3 and r["state"] == 0
    assert r["is3"] is False  # the contact says it never moved
    assert r["trace"] == [0, 1, 2, 3, 4, 5, 0]
    assert r["cp"] is False
    assert r["blocked"] is False
    assert r["still"] == 1 and r["relatch"] == 1
    assert r["after_fix"] == [0, False, True]


def test_spontaneous_mismatch_latches_after_ignore_and_debounce():
    (r,) = _run("""
ps = PhaseSwitch(); ps.restore(False, 0)
out = []
# within 1.5 s after the restore the contact is ignored
for i in range(5):
    ps.step(250, False, 1)
out.append(ps.error)
ps.clear_error()
# after the ignore time, one disagreeing sample is debounced, the second latches
for i in range(8):
    ps.step(250, False, 0)
ps.step(250, False, 1); out.append(ps.error)
ps.step(250, False, 0); out.append(ps.error)
ps.step(250, False, 1); out.append(ps.error)
ps.step(250, False, 1); out.append(ps.error); out.append(ps.hold_zero)
print(json.dumps(out))
""")
    assert r == [0, 0, 0, 0, 1, True]


def test_restart_reports_real_state():
    (r,) = _run("""
out = []
for relay, fb in ((False, 1), (True, 0), (True, -1), (False, -1)):
    ps = PhaseSwitch(); ps.restore(relay, fb)
    for i in range(10):
        ps.step(250, False, fb)
    out.append([ps.is_3phase, ps.relay_3p, ps.error])
print(json.dumps(out))
""")
    assert r == [[True, True, 0], [False, False, 0], [True, True, 0], [False, False, 0]]


def test_not_installed_and_min_interval():
    (r,) = _run("""
ps = PhaseSwitch(installed=False); ps.restore(False, -1)
a = ps.request(True)
ps = PhaseSwitch(cp_off_ms=10000, min_interval_ms=30000); ps.restore(False, 0)
site = Site(ps); site.run(2000)
ps.request(True)
while ps.state: site.tick(250)
b = ps.request(False)
site.run(29000)
c = ps.request(False)
site.run(1500)
d = ps.request(False)
print(json.dumps([a, b, c, d, ps.state]))
""")
    assert r == [False, False, False, True, 1]


def test_step_allocates_nothing_and_stays_small():
    out = run_mp(_SIM + """
import micropython
ps = PhaseSwitch(cp_off_ms=120000, min_interval_ms=3600000); ps.restore(False, 0)
fb = 0; drawing = True
seen = set()
def run(n):
    global fb, drawing
    for i in range(n):
        ps.step(250, drawing, fb)
ps.request(True)
ps.step(250, True, 0)
micropython.heap_lock()
for k in range(700):
    ps.step(250, k < 20, 1 if ps.relay_3p else 0)
micropython.heap_unlock()
lim = 2 ** 30
vals = [ps.interval_left_ms, ps._timer_ms, ps._cp_left_ms, ps._ignore_ms, ps._mismatch_ms]
print(ps.state, ps.last_result, all(-lim < v < lim for v in vals))
""")
    assert out.split() == ["0", "1", "True"]
