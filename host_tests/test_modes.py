"""The charge modes end to end (docs/modes-audit.md): the App with the simulated site as `make sim`
runs it, driven through power_manager/charge_mode and power_manager/config with a ManualClock
(tools/simsite; the harness of test_chargers_sim.py). Each test reproduces a mode change that
went wrong before its fix."""
from test_chargers_sim import _run

# A site with a constant surplus (PV less the house, without the car): surplus(w).
_SITE = """
from tools.simsite.profile import Profile
ev = app.sim_site.ev
def surplus(w):
    app.sim_site.profile = Profile([0, 10**6], [max(w, 0)] * 2, [-w, -w])
def until(pred, limit_ms):
    # ms until pred() holds (stepping 250 ms), or -1 when it did not within limit_ms.
    t = 0
    while t < limit_ms:
        run(250)
        t += 250
        if pred():
            return t
    return -1
"""


def test_writing_the_mode_in_use_again_is_no_mode_change(tmp_path):
    # Home automations often write the mode they want every few minutes. Only a change is the
    # user's action that may act at once (as the reference: its mode update sets the
    # 'just switched mode' exception only when the value changed); a repeated write of PV made
    # the start wait for the surplus's hysteresis vanish (and likewise a stop, a phase switch).
    r = _run(tmp_path, _SITE + """
surplus(0)
run(300000)                    # past the start-up period, nothing charging
surplus(2000)
run(20000)                     # a start waits for its hysteresis (240 s, early: 120 s)
before = app.pm.on_state_change_delay
w('power_manager/charge_mode', 2)
run(1000)
same = [app.pm.is_on_last, app.pm.on_state_change_delay]
w('power_manager/charge_mode', 3)      # a real change still acts at once
run(500)
print(json.dumps({'before': before, 'same': same, 'changed': app.pm.is_on_last}))
""")
    assert r["before"] > 200000
    assert r["same"][0] is False                       # still waiting...
    assert r["same"][1] == r["before"] - 1000          # ... on the same running block
    assert r["changed"] is True
