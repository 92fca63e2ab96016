"""Sweep power-manager settings over the benchmark days and print one line per combination
(host CPython). Used to choose the defaults and for the cloud_filter_mode table in
docs/benchmark.md:

    python -m tools.bench.tune --grid cloud_filter_mode=0,1,2,3 hysteresis_time=300
    python -m tools.bench.tune --grid cloud_filter_mode=1 hysteresis_time=60,120,180 \\
                               target_power_from_grid=0,-100 --settings default,peer

Keys of power_manager/debug_config (hysteresis_time) and experiment keys x_<name> (a temporary
constant the firmware reads from debug_config while it is being measured) go to --debug,
job.<key> to --ours-job (experiments such as job.base_pct=110), pv_scale_pct, load_noise_w,
voltage_noise_v and grid_impedance_mohm to the simulated site (`--grid cloud_filter_mode=0,1
load_noise_w=0,40`, `--grid pv_scale_pct=100,250`), the rest to --cfg.
"""
import argparse
import io
import itertools
import json
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools import bench_pv  # noqa: E402

_DEBUG_KEYS = ("hysteresis_time",)


def _is_debug(key):
    # x_<name>: a temporary experiment constant read from debug_config (docs/benchmark.md)
    return key in _DEBUG_KEYS or key.startswith("x_")


def run_combo(combo, settings, profiles, jobs):
    combo = dict(combo)
    # pv_scale_pct, load_noise_w, voltage_noise_v, grid_impedance_mohm: the simulated site
    # (bench_pv's --pv-scale-pct ...), not settings of the firmware
    site = []
    for o in bench_pv.SITE_OPTIONS:
        site += [o.opt, str(combo.pop(o.key, o.neutral))]
    cfg = ["%s=%s" % kv for kv in combo.items() if not _is_debug(kv[0]) and "." not in kv[0]]
    dbg = ["%s=%s" % kv for kv in combo.items() if _is_debug(kv[0])]
    # job.<key>=v: experiment knobs of our run (tools/bench/mp_day.py), e.g. job.base_pct=110
    extra = {k[4:]: v for k, v in combo.items() if k.startswith("job.")}
    with tempfile.TemporaryDirectory() as out:
        argv = ["--quiet", "--no-plots", "--no-baselines", "--settings", settings, "--out", out,
                "--jobs", str(jobs)] + site
        if profiles:
            argv += ["--profiles"] + profiles
        if cfg:
            argv += ["--cfg"] + cfg
        if dbg:
            argv += ["--debug"] + dbg
        if extra:
            argv += ["--ours-job", json.dumps(extra)]
        with redirect_stdout(io.StringIO()):
            bench_pv.main(argv)
        return json.loads((Path(out) / "details.json").read_text())["rows"]


def line(combo, rows):
    d = [r for r in rows if r["setting"] == "default"]
    p = [r for r in rows if r["setting"] == "peer"]
    parts = [" ".join("%s=%s" % kv for kv in combo.items())]
    if d:
        cap = [r["ours"]["capture_ratio"] for r in d if r["ours"]["oracle_kwh"] > 0.5]
        share = [r["ours"]["grid_share"] for r in d]
        surplus = sum(r["ours"]["ev_from_surplus_kwh"] for r in d)
        grid = sum(r["ours"]["ev_from_grid_kwh"] for r in d)
        ev = sum(r["ours"]["ev_kwh"] for r in d)
        parts.append("default: surplus %.2f kWh, capture min %.1f %% / total %.1f %%, grid share max %.1f %% "
                     "/ total %.1f %%, starts max %d, switches max %d, targets met %d/%d" % (
                         surplus, 100 * min(cap or [0]),
                         100 * surplus / max(1e-9, sum(r["ours"]["oracle_kwh"] for r in d)),
                         100 * max(share), 100 * grid / max(ev, 1e-9),
                         max(r["ours"]["starts"] for r in d),
                         max(r["ours"]["phase_switches"] for r in d),
                         sum(1 for r in d if not r["target_misses"]), len(d)))
    if p:
        beats = [r for r in p if r.get("beats")]
        parts.append("peer: beats %d/%d (PV %d, share %d, starts %d)" % (
            sum(1 for r in beats if all(r["beats"][k] for k in ("pv_ok", "share_ok", "starts_ok"))),
            len(beats), sum(1 for r in beats if r["beats"]["pv_ok"]),
            sum(1 for r in beats if r["beats"]["share_ok"]),
            sum(1 for r in beats if r["beats"]["starts_ok"])))
    return " | ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", nargs="+", required=True, help="key=v1,v2,...")
    ap.add_argument("--settings", default="default")
    ap.add_argument("--profiles", nargs="*")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="per-day numbers too")
    a = ap.parse_args(argv)
    keys, values = [], []
    for g in a.grid:
        k, _, vs = g.partition("=")
        keys.append(k)
        values.append([json.loads(v) for v in vs.split(",")])
    for vals in itertools.product(*values):
        combo = dict(zip(keys, vals))
        rows = run_combo(combo, a.settings, a.profiles, a.jobs)
        print(line(combo, rows), flush=True)
        if a.verbose:
            for r in rows:
                o = r["ours"]
                print("    %-14s %-7s capture %5.1f %% grid %5.1f %% starts %2d sw %d ev %.2f peer_pv %.2f %s" % (
                    r["profile"], r["setting"], 100 * o["capture_ratio"], 100 * o["grid_share"],
                    o["starts"], o["phase_switches"], o["ev_kwh"], o["peer_pv_kwh"],
                    ",".join(r["target_misses"])), flush=True)


if __name__ == "__main__":
    main()
