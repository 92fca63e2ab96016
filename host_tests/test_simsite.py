"""The simulated site (tools/simsite) on the MicroPython Unix port: EV, profiles, house, battery."""
import json
import sys

from mp import ROOT, run_mp

sys.path.insert(0, str(ROOT))
from tools.simsite.noise import Noise  # noqa: E402


def _mp_json(code, heap="100wK"):
    out = run_mp(code, heap=heap)
    return json.loads(out.strip().splitlines()[-1])


def test_ev_follows_setpoint_after_delay_and_draws_95_to_100_pct():
    r = _mp_json("""
import json
from tools.simsite.ev import EV
ev = EV(delay_ms=3000, seed=5)
trace = []
for i in range(40):           # 10 s at 10 A on 3 phases, 250 ms steps
    ev.step(250, 10000, 3)
    trace.append(list(ev.phase_currents_ma))
first = [i for i, pc in enumerate(trace) if pc[0] > 0][0]
ev.step(250, 5000, 3)         # below 6 A: pause at once
paused = list(ev.phase_currents_ma)
for i in range(40):
    ev.step(250, 20000, 1)    # 20 A offered on one phase: capped at 16 A, L1 only
one = list(ev.phase_currents_ma)
ev.step(250, 20000, 3)        # contactor to 3 phases: the car starts over
after_switch = list(ev.phase_currents_ma)
print(json.dumps({"first": first, "end": trace[-1], "paused": paused, "one": one,
                  "after_switch": after_switch, "power": ev.power_w}))
""")
    # No current for the reaction delay (3 s = 12 steps), then it follows.
    assert 10 <= r["first"] <= 13
    assert all(9500 <= i <= 10000 for i in r["end"])
    assert r["paused"] == [0, 0, 0]
    assert 15200 <= r["one"][0] <= 16000 and r["one"][1:] == [0, 0]
    assert r["after_switch"] == [0, 0, 0]


def test_ev_draw_percentage_stays_in_range_over_hours():
    r = _mp_json("""
import json
from tools.simsite.ev import EV
ev = EV(seed=11, max_ma=32000)
lo, hi = 10**9, 0
for i in range(4 * 3600):     # 4 h at 1 s
    ev.step(1000, 16000, 1)
    if i > 10:
        lo = min(lo, ev.current_ma and ev.phase_currents_ma[0]); hi = max(hi, ev.phase_currents_ma[0])
print(json.dumps([lo, hi, ev.energy_wh]))
""")
    lo, hi, wh = r
    assert 15200 <= lo < hi <= 16000  # 95..100 % of 16 A, and it does vary
    assert 4 * 16 * 230 * 95 // 100 <= wh <= 4 * 16 * 230


def test_profile_parsing_holds_samples_over_gaps_and_handles_empty_base_grid():
    r = _mp_json(r"""
import json
from tools.simsite.profile import Profile, ProfileError
lines = ["# source: test", "", "t_s,pv_w,base_grid_w", "100,200,", "160,300,-50",
         "400,-3,20", "460,500.6,"]
p = Profile.parse(lines, name="t")
q = [(t, p.pv_w_at(t * 1000), p.base_grid_w_at(t * 1000)) for t in (0, 59, 60, 61, 299, 300, 359, 360, 1000)]
q.append(("back", p.pv_w_at(0), p.base_grid_w_at(0)))   # backwards look-up
errs = []
for bad in (["t_s,pv_w", "0,1", "0,2"], ["pv,x", "0,1"], ["t_s,pv_w", "0,abc"], ["# only"]):
    try:
        Profile.parse(bad)
        errs.append(None)
    except ProfileError as e:
        errs.append(str(e))
nob = Profile.parse(["t_s,pv_w", "0,5", "60,6"])
# As a spreadsheet saves it: byte-order mark, quoted cells, CRLF, columns in another order.
xl = Profile.parse(["\ufeff\"pv_w\",\"t_s\"\r\n", "\"7\",\"0\"\r\n", "\"8\",\"60\"\r\n"])
print(json.dumps({"q": q, "dur": p.duration_ms, "has": p.has_base_grid, "errs": errs,
                  "nob": [nob.has_base_grid, nob.base_grid_w_at(0), nob.duration_ms],
                  "xl": [xl.pv_w_at(0), xl.pv_w_at(60000), xl.has_base_grid]}))
""")
    # Time counts from the first sample (t_s 100 -> 0); each sample holds until the next.
    assert r["q"] == [[0, 200, None], [59, 200, None], [60, 300, -50], [61, 300, -50],
                      [299, 300, -50], [300, 0, 20], [359, 0, 20], [360, 501, None],
                      [1000, 501, None], ["back", 200, None]]
    assert r["dur"] == 420000 and r["has"] is True
    assert all(r["errs"]) and "increase" in r["errs"][0] and "header" in r["errs"][1]
    assert "number" in r["errs"][2]
    assert r["nob"] == [False, None, 120000]
    assert r["xl"] == [7, 8, False]


def test_default_day_is_a_looping_10_kwp_day():
    r = _mp_json("""
import json
from tools.simsite.profile import Profile
d = Profile.default_day()
wh = sum(d.pv_w_at(m * 60000) for m in range(1440)) // 60
print(json.dumps([wh, d.pv_w_at(0), d.pv_w_at(13 * 3600000), d.duration_ms, d.pv_w_at(86400000 + 13 * 3600000)]))
""")
    wh, night, noon, dur, looped = r
    assert 30000 < wh < 80000 and night == 0 and 6000 < noon <= 10000 and dur == 86400000
    assert looped == noon  # the default day loops for `make sim`


def test_house_model_is_seeded_and_reproducible():
    r = _mp_json("""
import json
from tools.simsite.house import House
def sample(seed):
    h = House(seed=seed)
    return [h.w_at(t * 60000) for t in range(0, 1440, 7)]
a, b, c = sample(4), sample(4), sample(5)
h = House(seed=4)
ph = [list(h.phase_w_at(t * 60000)) for t in range(0, 1440, 7)]
print(json.dumps({"same": a == b, "differs": a != c, "min": min(a), "max": max(a),
                  "kwh": sum(House(seed=4).w_at(t * 60000) for t in range(1440)) // 60000,
                  "phases_ok": all(sum(p) == w for p, w in zip(ph, a))}))
""")
    assert r["same"] and r["differs"] and r["phases_ok"]
    assert r["min"] > 0 and r["max"] >= 1500   # appliances switch on
    assert 4 <= r["kwh"] <= 20


def test_site_balances_power_and_battery_zeroes_the_grid():
    r = _mp_json("""
import json
from tools.simsite.site import Site
from tools.simsite.profile import Profile
from tools.simsite.battery import Battery
from tools.simsite.ev import EV
p = Profile.parse(["t_s,pv_w,base_grid_w", "0,6000,-5000", "3600,6000,-5000"])
s = Site(profile=p, ev=EV(), battery=Battery(capacity_wh=10000, max_charge_w=3000))
out = []
for i in range(240):   # 60 s
    s.step(250, 6000, 1)
    out.append(s.grid_w - (s.base_grid_w + s.ev.power_w + s.battery_w))
p2 = Profile.parse(["t_s,pv_w,base_grid_w", "0,3000,", "3600,3000,"])
s2 = Site(profile=p2, house=False)
s2.step(1000, 0, 0)
print(json.dumps({"err": max(abs(x) for x in out), "grid": s.grid_w, "bat": s.battery_w,
                  "ev": s.ev.power_w, "house": s.house_w, "pc": s.phase_currents_ma,
                  "g2": s2.grid_w, "vals": s2.grid_values()}))
""")
    assert r["err"] == 0
    assert r["house"] == 1000
    # EV 6 A on L1 (~1.35 kW) + battery at its 3 kW limit: 5 kW export minus both.
    assert 1300 <= r["ev"] <= 1380 and 2900 <= r["bat"] <= 3000
    assert -5000 + r["ev"] + r["bat"] == r["grid"]
    assert r["pc"][0] > r["pc"][1]       # the EV is on L1
    assert r["g2"] == -3000 and r["vals"][0] == -3000.0 and r["vals"][4] == 230.0


def test_load_noise_is_seeded_bell_shaped_and_correlated_over_seconds():
    code = """
import json
from tools.simsite.noise import Noise
def seq(seed, n):
    z = Noise(40, seed)
    return [z.at(s * 1000 + 500) for s in range(n)]
a = seq(3, 20000)
z = Noise(40, 3)
held = [z.at(t) for t in (0, 250, 999, 1000, 1750)]
print(json.dumps({"a": a, "a2": seq(3, 50), "b": seq(4, 50), "held": held}))
"""
    r = _mp_json(code, heap="4M")
    a = r["a"]
    assert r["a2"] == a[:50] and r["b"] != a[:50]
    # The host's CPython run of the baselines sees the same fluctuation.
    z = Noise(40, 3)
    assert [z.at(s * 1000 + 500) for s in range(20000)] == a
    n = len(a)
    mean = sum(a) / n
    var = sum((x - mean) ** 2 for x in a) / n

    def corr(lag):
        return sum((a[i] - mean) * (a[i + lag] - mean) for i in range(n - lag)) / (n - lag) / var

    assert abs(mean) < 4
    assert 36 <= var ** 0.5 <= 44                      # the deviation asked for
    assert 2.5 * 40 <= max(abs(x) for x in a) <= 5 * 40   # bell-shaped: tails, none wild
    assert 0.77 <= corr(1) <= 0.87                     # exp(-1 s / 5 s) = 0.82
    assert 0.28 <= corr(5) <= 0.46                     # exp(-1) = 0.37
    # One value per second: held within a second, a new one at the next.
    assert r["held"][0] == r["held"][1] == r["held"][2] and r["held"][3] == r["held"][4]


def test_load_noise_moves_the_house_load_and_never_makes_it_a_generator():
    r = _mp_json("""
import json
from tools.simsite.site import Site
from tools.simsite.profile import Profile
from tools.simsite.house import House
from tools.simsite.noise import Noise
from tools.simsite.ev import EV
measured = Profile.parse(["t_s,pv_w,base_grid_w", "0,3000,-2500", "3600,3000,-2500"])
modelled = Profile.parse(["t_s,pv_w,base_grid_w", "0,3000,", "3600,3000,"])
s = Site(profile=measured, ev=EV(), load_noise=Noise(60, 2))
ref = Noise(60, 2)
dev = []
err = 0
perr = 0
for i in range(4 * 600):
    s.step(250, 6000, 1)
    dev.append(s.grid_w - (-2500 + s.ev.power_w))
    err = max(err, abs(dev[-1] - ref.at(s.t_ms)), abs(s.house_w - (500 + ref.value)))
    # Per phase: the house's third (rounded per phase), the PV's third, the EV on L1.
    perr = max(perr, abs(sum(s.phase_currents_ma) - sum(s.ev.phase_currents_ma)
                         - (s.house_w - 3000) * 1000 // 230))
big = Site(profile=modelled, house=House(seed=1, duration_s=3600), load_noise=Noise(1000, 5))
houses = []
for i in range(4 * 600):
    big.step(250, 0, 1)
    houses.append(big.house_w)
none = Site(profile=modelled, house=False, load_noise=Noise(1000, 5))
grids = []
for i in range(40):
    grids.append(none.step(250, 0, 1))
print(json.dumps({"err": err, "dev": dev, "houses": houses, "grids": grids, "perr": perr}))
""", heap="4M")
    assert r["err"] == 0
    assert max(r["dev"]) - min(r["dev"]) > 100       # the meter sees the fluctuation
    assert min(r["houses"]) == 0 < max(r["houses"])  # floored at 0 W, not below
    assert set(r["grids"]) == {-3000}                # no house at all: nothing to fluctuate
    assert r["perr"] <= 3                            # per phase: the house's share (rounding)


def test_site_voltage_follows_its_own_current_and_the_voltage_noise():
    r = _mp_json("""
import json
from tools.simsite.site import Site
from tools.simsite.profile import Profile
from tools.simsite.noise import Noise
from tools.simsite.ev import EV
night = Profile.parse(["t_s,pv_w,base_grid_w", "0,0,500", "3600,0,500"])
sunny = Profile.parse(["t_s,pv_w,base_grid_w", "0,9000,-8000", "3600,9000,-8000"])
out = {}
for name, prof, offer in (("night", night, 16000), ("sunny", sunny, 0)):
    s = Site(profile=prof, ev=EV(car_phases=1), impedance_mohm=400)
    for i in range(4 * 30):
        s.step(250, offer, 1)
    l1 = s.phase_currents_ma[0]
    s.step(250, offer, 1)
    out[name] = [s.voltage_v, l1, s.ev.power_w, s.ev.phase_currents_ma[0], s.grid_values()[4]]
stiff = Site(profile=night, ev=EV(car_phases=1))
shaky = Site(profile=night, ev=EV(car_phases=1), voltage_noise=Noise(2, 9))
ref = Noise(2, 9)
vs = []
err = 0
for i in range(4 * 600):
    stiff.step(250, 0, 1)
    shaky.step(250, 0, 1)
    vs.append(shaky.voltage_v)
    err = max(err, abs(shaky.voltage_v - 230 - ref.at(shaky.t_ms)))
out["stiff"] = stiff.voltage_v
out["err"] = err
out["vs"] = [min(vs), max(vs)]
print(json.dumps(out))
""")
    v, l1, ev_w, ev_ma, meter_v = r["night"]
    # Importing ~16 A + the house on L1 across 0.4 Ohm: ~7 V below the nominal 230 V.
    assert l1 > 16000 and v == 230 - (400 * l1 + 500000) // 1000000 and 222 <= v <= 224
    assert meter_v == v and ev_w == ev_ma * v // 1000     # the meter and the car see it
    v, l1, ev_w, ev_ma, meter_v = r["sunny"]
    assert l1 < -10000 and v == 230 - (400 * l1 + 500000) // 1000000 >= 234   # export raises it
    assert r["stiff"] == 230 and r["err"] == 0
    assert r["vs"][0] <= 227 and r["vs"][1] >= 233         # +-2 V noise reaches 3 deviations
