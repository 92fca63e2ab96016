"""The clairvoyant bounds of the benchmark (tools/bench/bound.py), host CPython: the phase-switch
limited one (best_capture_phases) on a synthetic day of 3p-level sun with two dips."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.bench import bound  # noqa: E402
from tools.simsite.account import Account  # noqa: E402


def _day():
    # 1-minute rows [t_s, pv_w, house_w]: 60 min at 8 kW, a 15-min dip to 1.5 kW, 60 min at
    # 8 kW, another dip, 60 min at 8 kW.
    w = [8000] * 60 + [1500] * 15 + [8000] * 60 + [1500] * 15 + [8000] * 60
    return [[60 * i, p, 0] for i, p in enumerate(w)]


def test_phase_switch_limit_bounds_the_capture():
    a = Account(230, 6000, 16000)
    series = _day()
    caps, ups = {}, {}
    for sw in (0, 2, 4):
        up, plan, oracle = bound.best_capture_phases(series, a, 6, sw, 0.03)
        assert plan <= up + 1e-9
        caps[sw] = plan
        ups[sw] = up
    # No switch: 1p all day, 3680 W in the sun and the 1500 W of the dips (no import).
    assert abs(caps[0] - (180 * 3680 + 30 * 1500) / 60 / 1000) < 0.01, caps
    # One switch up (and the day ends on 3p): 8 kW in the sun after the first minute; the dips
    # pause (a start each) since riding them on 3 x 6 A would import 2.6 kW.
    assert abs(caps[2] - (179 * 8000 / 60 / 1000)) < 0.2, caps
    assert ups[0] < ups[2] <= ups[4] + 1e-9, ups
    # Never above the bound without a phase limit.
    up_plain, _, oracle = bound.best_capture(series, a, 6, 0.03)
    assert ups[4] <= up_plain + 1e-6 and oracle > caps[4]
