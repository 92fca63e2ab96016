"""Charger current distribution (firmware/control/charge_alloc.py) on the Unix port.

Hypothesis generates batches of random scenarios; one MicroPython process runs a whole batch
and reports every violated property, so many cases stay fast."""
import json
import random

from hypothesis import given, settings, HealthCheck, strategies as st

from mp import run_mp

# Runs each case: n chargers, a sequence of (dt_ms, budget_ma, per-charger
# (active, measured_ma)) steps. A charger "charges" when it was allocated current.
_RUNNER = """
import json
from firmware.control.charge_alloc import ChargeAlloc
cases = json.load(open(%r))
results = []
for c in cases:
    a = ChargeAlloc(rotation_ms=c.get('rotation_ms', 900000))
    n = len(c['min'])
    a.n = n
    for i in range(n):
        a.min_ma[i] = c['min'][i]; a.max_ma[i] = c['max'][i]
    errs = []
    served = [0] * n
    t = 0
    for k in range(len(c['steps']) * c.get('repeat', 1)):
        dt, budget, act, meas = c['steps'][k %% len(c['steps'])]
        t += dt
        for i in range(n):
            a.active[i] = bool(act[i])
            a.charging[i] = a.alloc_ma[i] > 0 and act[i]
            a.measured_ma[i] = min(meas[i], a.alloc_ma[i])
        total = a.step(dt, budget)
        s = 0
        for i in range(n):
            x = a.alloc_ma[i]
            s += x
            if x != 0 and (x < a.min_ma[i] or x > a.max_ma[i]):
                errs.append('t=%%d charger %%d got %%d outside [%%d, %%d]' %% (t, i, x, a.min_ma[i], a.max_ma[i]))
            if x and not act[i]:
                errs.append('t=%%d inactive charger %%d got %%d' %% (t, i, x))
            if x:
                served[i] += dt
        if s != total or s > max(0, budget):
            errs.append('t=%%d total %%d above budget %%d' %% (t, s, budget))
        if len(errs) > 3:
            break
    results.append({'errs': errs, 'served': served})
print(json.dumps(results))
"""


def _run_cases(tmp_path, cases):
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(cases))
    out = run_mp(_RUNNER % str(p), heap="4M")
    return json.loads(out.splitlines()[-1])


@st.composite
def _charger_case(draw):
    # Hypothesis picks the shape and a seed; the seed expands into the many numbers of a
    # scenario (drawing each number through hypothesis is far too slow for long scenarios).
    n = draw(st.integers(1, 16))
    n_steps = draw(st.integers(1, 60))
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    big = draw(st.booleans())
    mins = [rng.choice([6000, 6000, 8000, 9200, 10000]) for _ in range(n)]
    maxs = [m + rng.randint(0, 26000) for m in mins]
    steps = []
    for _ in range(n_steps):
        dt = rng.choice([250, 1000, 5000, 10000, 60000])
        budget = rng.randint(-5000, 400000 if big else 60000)
        act = [rng.random() < 0.7 for _ in range(n)]
        meas = [rng.randint(0, 32000) for _ in range(n)]
        steps.append([dt, budget, act, meas])
    return {"min": mins, "max": maxs, "steps": steps}


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_charger_case(), min_size=50, max_size=50))
def test_never_above_limits_and_zero_or_at_least_minimum(tmp_path_factory, cases):
    res = _run_cases(tmp_path_factory.mktemp("alloc"), cases)
    for case, r in zip(cases, res):
        assert r["errs"] == [], (r["errs"], case["min"], case["max"])


@st.composite
def _starvation_case(draw):
    n = draw(st.integers(2, 16))
    mins = [draw(st.sampled_from([6000, 8000, 9200])) for _ in range(n)]
    maxs = [m + draw(st.integers(0, 10000)) for m in mins]
    # Enough for the largest minimum, not enough for all of them.
    budget = draw(st.integers(max(mins), max(max(mins), sum(mins) - 1)))
    return {"min": mins, "max": maxs, "budget": budget}


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(_starvation_case(), min_size=8, max_size=8))
def test_rotation_serves_everyone(tmp_path_factory, cases):
    # Steady budget, every car connected and hungry: with rotation every 60 s, within
    # (n + 1) rotation periods every charger must have had current for a while.
    rot = 60000
    runs = []
    for c in cases:
        n = len(c["min"])
        steps = [[5000, c["budget"], [1] * n, [32000] * n]]
        runs.append({"min": c["min"], "max": c["max"], "steps": steps, "rotation_ms": rot,
                     "repeat": (n + 1) * rot // 5000})
    res = _run_cases(tmp_path_factory.mktemp("rot"), runs)
    for c, r in zip(cases, res):
        assert r["errs"] == []
        assert min(r["served"]) >= rot // 2, (c, r["served"])


def test_examples_fair_share_lower_first_requests(tmp_path):
    out = run_mp("""
from firmware.control.charge_alloc import ChargeAlloc
a = ChargeAlloc()
a.n = 3
for i in range(3):
    a.min_ma[i] = 6000; a.max_ma[i] = 16000; a.active[i] = True
a.step(1000, 30000); print(list(a.alloc_ma[:3]))        # fair: 10 A each
a.step(1000, 20000); print(list(a.alloc_ma[:3]))        # lower at once: 6666 each
a.step(1000, 60000); print(list(a.alloc_ma[:3]))        # raise waits (settle 5 s)
a.step(4000, 60000); print(list(a.alloc_ma[:3]))        # now raised, capped at max 16 A
a.step(1000, 14000); print(list(a.alloc_ma[:3]), a.waiting)  # two fit: 7 A each, one 0
a.min_ma[2] = 9200; a.active[1] = False
a.step(6000, 100000); print(list(a.alloc_ma[:3]))       # 1 unplugged -> 0
# request from the measured current after 60 s of charging: 8 A drawn -> 11 A
for i in range(3):
    a.charging[i] = True; a.measured_ma[i] = 8000; a.active[i] = True
for k in range(70):
    a.step(1000, 100000)
print(list(a.alloc_ma[:3]), list(a.request_ma[:3]))
""")
    lines = out.splitlines()
    assert lines[0] == "[10000, 10000, 10000]"
    assert lines[1] == "[6666, 6666, 6666]"
    assert lines[2] == "[6666, 6666, 6666]"
    assert lines[3] == "[16000, 16000, 16000]"
    assert lines[4] == "[7000, 7000, 0] 1"
    assert lines[5] == "[16000, 0, 16000]"
    assert lines[6] == "[11000, 11000, 11000] [11000, 11000, 11000]"


def test_step_allocates_nothing():
    out = run_mp("""
import micropython
from firmware.control.charge_alloc import ChargeAlloc, MAX_CHARGERS
a = ChargeAlloc(rotation_ms=20000)
a.n = MAX_CHARGERS
for i in range(MAX_CHARGERS):
    a.min_ma[i] = 6000 + 200 * i; a.max_ma[i] = 32000; a.active[i] = i % 5 != 0
    a.measured_ma[i] = 1000 * i
a.step(1000, 50000)
budgets = (50000, 20000, 300000, 0, 70000, 123456)
micropython.heap_lock()
for k in range(3000):
    for i in range(MAX_CHARGERS):
        a.charging[i] = a.alloc_ma[i] > 0
    a.step(1000, budgets[k % 6] if k % 50 == 0 else budgets[(k // 50) % 6])
micropython.heap_unlock()
lim = 2 ** 30
print(all(-lim < v < lim for v in a._run_ms + a._wait_ms + a._charging_ms), a.allocated_ma <= 123456)
""")
    assert out.split() == ["True", "True"]


def test_raise_waits_only_for_other_chargers_cut():
    out = run_mp("""
from firmware.control.charge_alloc import ChargeAlloc
a = ChargeAlloc()
a.n = 1
a.min_ma[0] = 6000; a.max_ma[0] = 16000; a.active[0] = True
a.step(1000, 16000); a.step(1000, 8000); a.step(250, 12000)
print(a.alloc_ma[0])                 # its own cut undone at once: 12 A
b = ChargeAlloc()
b.n = 2
for i in range(2):
    b.min_ma[i] = 6000; b.max_ma[i] = 16000; b.active[i] = True
b.step(1000, 20000)                  # 10 + 10
b.max_ma[0] = 6000                   # charger 0 now wants less: it is cut to 6 A ...
b.step(1000, 20000)
print(b.alloc_ma[0], b.alloc_ma[1])  # ... and charger 1 gets the rest only later
b.step(4000, 20000)
print(b.alloc_ma[0], b.alloc_ma[1])
b.step(1000, 20000)
print(b.alloc_ma[0], b.alloc_ma[1])
""")
    assert out.split("\n")[:4] == ["12000", "6000 10000", "6000 10000", "6000 14000"]
