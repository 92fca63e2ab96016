"""One benchmark day of a peer baseline controller (host CPython), same output as mp_day.py.

    python -m tools.bench.host_day < job.json     (job["controller"]: "evcc" or "ref_gen1")
"""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The firmware's phase switch sequence runs here too (same contactor for every controller);
# it only needs micropython.const from the MicroPython runtime.
if "micropython" not in sys.modules:
    import types
    sys.modules["micropython"] = types.SimpleNamespace(const=lambda x: x)

from firmware.control.phase_switch import PhaseSwitch  # noqa: E402
from tools.bench.baselines import Evcc, RefGen1  # noqa: E402
from tools.bench.setting import build_site  # noqa: E402
from tools.simsite.dayrun import run_day  # noqa: E402

CONTROLLERS = {"evcc": Evcc, "ref_gen1": RefGen1}


def run(job):
    site, opts = build_site(job)
    ctl = CONTROLLERS[job["controller"]](opts["min_ma"], opts["max_ma"], opts["allow_switch"])
    t0 = time.monotonic()
    acct, series = run_day(site, ctl, allow_switch=opts["allow_switch"],
                           start_phases=opts["start_phases"], max_ma=opts["max_ma"],
                           series_ms=job.get("series_ms", 60000),
                           phase_switch=PhaseSwitch() if opts["allow_switch"] else None)
    return {"result": acct.result(), "series": series,
            "perf": {"wall_s": round(time.monotonic() - t0, 2)}}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.stdin.read()))))
