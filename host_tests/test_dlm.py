"""Dynamic load management (firmware/control/dlm.py) with house load steps, on the Unix port."""
import json

from mp import run_mp

# A site: a house load per phase, one 3p car that follows its set-point 2 s late (0 below
# 6 A, at most 16 A), a grid meter sampling every 500 ms, control steps of 250 ms.
_SIM = """
import json
from firmware.control.dlm import Dlm, target_ma
class Site:
    def __init__(self, fuse=35000, big=32000, margin=0):
        self.d = Dlm(); self.d.configure(fuse, big, margin)
        self.house = [2000, 2000, 2000]; self.lag = [0] * 8; self.draw = 0; self.t = 0
        self.setpoint = 0; self.sample_t = 0; self.meter_on = True; self.grid = [0, 0, 0]
        self.log = []; self.keep_log = True
        self.grid = list(self.house)
    def tick(self, dt=250):
        self.t += dt
        self.lag.append(self.setpoint); self.draw = self.lag.pop(0)
        fresh = False
        if self.meter_on and self.t % 500 == 0:
            self.grid = [h + self.draw for h in self.house]
            self.sample_t = self.t; fresh = True
        self.d.step(dt, self.grid, self.t - self.sample_t, fresh, [self.draw] * 3, 6000)
        lim = min(self.d.limit(), 16000)
        self.setpoint = lim if lim >= 6000 else 0
        if self.keep_log:
            self.log.append((self.t, self.setpoint, max(h + self.draw for h in self.house)))
    def run(self, ms):
        for _ in range(ms // 250):
            self.tick()
"""


def _run(body, heap="2M"):
    return json.loads(run_mp(_SIM + body, heap=heap).splitlines()[-1])


def test_target_formula():
    r = _run("print(json.dumps([target_ma(35000, 32000, 0), target_ma(35000, 32000, 10), "
             "target_ma(63000, 0, 0), target_ma(16000, 16000, 50), target_ma(35000, 60000, 0)]))")
    # 35 A fuse, 32 A consumer -> 17 A (DOMAIN 2); margin 10 % -> 15.3 A; capped at the fuse.
    assert r == [17000, 15300, 63000, 3200, 0]


def test_big_consumer_switching_on_stops_the_car_at_once_and_restart_waits():
    r = _run("""
s = Site()
s.run(60000)
before = s.setpoint
s.house[0] = 34000          # the 32 A consumer switches on L1
t_on = s.t
s.run(30000)
cut = [t - t_on for t, sp, _ in s.log if t > t_on and sp == 0][0]
s.house[0] = 2000           # and off again
t_off = s.t
s.run(400000)
back = [t - t_off for t, sp, _ in s.log if t > t_off and sp > 0][0]
starts = sum(1 for a, b in zip(s.log, s.log[1:]) if a[1] == 0 and b[1] > 0)
print(json.dumps({'before': before, 'cut': cut, 'back': back, 'starts': starts, 'end': s.setpoint}))
""")
    assert r["before"] == 15000          # 17 A target - 2 A house
    assert r["cut"] <= 1000              # within the next fresh sample
    # Re-activation only after the 4 min minimum filter forgot the overload.
    assert 200000 <= r["back"] <= 270000
    assert r["starts"] == 1              # one restart, no cycling
    assert r["end"] == 15000


def test_medium_step_reduces_within_reaction_time_and_converges():
    r = _run("""
s = Site()
s.run(60000)
s.house = [7000, 7000, 7000]  # +5 A on every phase: total 22 A > target + 20 %
t0 = s.t
s.run(30000)
first = [t - t0 for t, sp, _ in s.log if t > t0 and sp < 15000][0]
over20 = max([0] + [t - t0 for t, sp, tot in s.log if t > t0 and tot > 17000 * 12 // 10])
over = max([0] + [t - t0 for t, sp, tot in s.log if t > t0 and tot > 17000])
print(json.dumps({'first': first, 'over20': over20, 'over': over, 'end': s.setpoint}))
""")
    assert r["first"] <= 1000
    # Above target + 20 % only until the car followed (2 s car lag + one sample).
    assert r["over20"] <= 3000
    # Within the 10 s window the mean has caught up: at or below the target.
    assert r["over"] <= 13000
    assert 9500 <= r["end"] <= 10000


def test_meter_going_silent_stops_charging():
    r = _run("""
s = Site()
s.run(60000)
before = s.setpoint
s.meter_on = False
t0 = s.t
s.run(100000)
stop = [t - t0 for t, sp, _ in s.log if t > t0 and sp == 0][0]
stale = s.d.stale
s.meter_on = True
t1 = s.t
s.run(300000)
back = [t - t1 for t, sp, _ in s.log if t > t1 and sp > 0][0]
print(json.dumps({'before': before, 'stop': stop, 'stale': stale, 'back': back}))
""")
    assert r["before"] == 15000
    assert 65000 <= r["stop"] <= 66000
    assert r["stale"] is True
    assert 200000 <= r["back"] <= 250000


def test_no_meter_at_boot_waits_then_starts_at_once():
    r = _run("""
s = Site()
s.meter_on = False
s.sample_t = -100000
s.run(10000)
a = s.setpoint
s.meter_on = True
s.run(3000)
print(json.dumps([a, s.setpoint, s.d.stopped]))
""")
    assert r == [0, 15000, [False, False, False]]


def test_random_house_load_never_stays_above_target():
    r = _run("""
import random
random.seed(7)
s = Site()
s.keep_log = False
s.run(30000)
worst20 = 0; run20 = 0; worst = 0; run = 0
for k in range(200):
    p = random.getrandbits(2) % 3
    s.house[p] = random.getrandbits(15) % 30000 - 3000
    for i in range(random.getrandbits(7) % 120 + 8):
        s.tick()
        tot = max(h + s.draw for h in s.house)
        room = max(s.house) 
        if tot > 17000 * 12 // 10 and s.draw > 0:
            run20 += 250; worst20 = max(worst20, run20)
        else:
            run20 = 0
        if tot > 17000 and s.draw > 0:
            run += 250; worst = max(worst, run)
        else:
            run = 0
print(json.dumps([worst20, worst]))
""")
    # While the car draws, the phase is above target + 20 % at most until the car followed
    # the cut, and above the target at most for the 10 s mean window (+ car lag).
    assert r[0] <= 3000, r
    assert r[1] <= 13000, r


def test_step_allocates_nothing_and_stays_small():
    out = run_mp("""
import micropython
from firmware.control.dlm import Dlm
d = Dlm(); d.configure(1000000, 0, 0)
g = [500000, -500000, 1000]; c = [0, 0, 0]
d.step(250, g, 0, True, c, 6000)
def run(n):
    for k in range(n):
        g[k % 3] = (k * 7919) % 1000000 - 500000
        d.step(250, g, 0 if k % 1000 < 700 else 70000, k % 2 == 0, c, 6000)
micropython.heap_lock()
run(5000)
micropython.heap_unlock()
lim = 2 ** 30
vals = d._sum + d._max + d._gate + d.limit_ma + d.room_ma
print(all(-lim < v < lim for v in vals))
""")
    assert out.split() == ["True"]


def test_integer_only_rules_for_charger_control_modules():
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for m in ("dlm", "charge_alloc", "phase_switch"):
        tree = ast.parse((root / "firmware" / "control" / (m + ".py")).read_text())
        for node in ast.walk(tree):
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), m
            assert not isinstance(getattr(node, "op", None), ast.Div), m
            assert not (isinstance(node, ast.Name) and node.id == "float"), m


def test_house_step_into_overload_is_cut_whole_at_the_next_sample():
    # 25 A fuse, 16 A largest consumer: target 19 A. The car draws 16 A over a 2 A house; the
    # house steps to 12 A on L1, so the car must come down to 7 A. The whole cut goes out with
    # the next fresh sample (the reference's (max + mean) / 2 cut only half of it and left the
    # phase above target for ~12 s, as measured in make sim).
    r = _run("""
s = Site(fuse=25000, big=16000)
s.run(60000)
before = s.setpoint
s.house[0] = 12000
t_on = s.t
s.run(1000)
first = [sp for t, sp, _ in s.log if t > t_on and sp != before][0]
s.run(10000)
over = [t - t_on for t, sp, g in s.log if t > t_on and g > 19000 + 190]
print(json.dumps([before, first, max(over) if over else 0]))
""")
    before, first_cut_ma, last_over_target_ms = r
    assert before == 16000
    # 15/16 of the 9 A excess at once (DOMAIN 2's controller), not half of it.
    assert first_cut_ma <= 7000 + 9000 // 16 + 100
    # More than 1 % above target only while the car follows its set-point (2 s late) plus one
    # meter sample and one control step.
    assert last_over_target_ms <= 3000
