"""`tools/bench_pv.py --seeds` (`make bench-seeds`): our controller once per seed on short
synthetic days, the "Seed spread" table against seeds.json, and the bad-spec errors."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from test_bench import _bench  # noqa: E402
from tools.bench_pv import parse_seeds  # noqa: E402


def _short_day(path, base_grid_w=None):
    # 2 hours of 1-minute rows: ramp to 5 kW, a 10-minute cloud, ramp down. Without base_grid_w
    # the house load comes from the seeded model (tools/simsite/house.py).
    rows = ["t_s,pv_w,base_grid_w"]
    for m in range(120):
        pv = min(5000, m * 100) if m < 60 else (120 - m) * 100
        if 40 <= m < 50:
            pv //= 4
        rows.append("%d,%d,%s" % (m * 60, pv, "" if base_grid_w is None else base_grid_w - pv))
    path.write_text("\n".join(rows) + "\n")
    return path


def _table_row(stdout, label):
    (line,) = [ln for ln in stdout.splitlines() if ln.startswith("| %s |" % label)]
    return [c.strip() for c in line.strip("|").split("|")]


def test_seed_spread_table_matches_seeds_json(tmp_path):
    house = _short_day(tmp_path / "house_day.csv")
    fixed = _short_day(tmp_path / "fixed_day.csv", base_grid_w=400)
    proc = _bench(["--profiles", str(house), str(fixed), "--seeds", "1-3"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "out"
    rows = json.loads((out / "seeds.json").read_text())
    # Our controller only, and a plain run's files are not written.
    assert not (out / "summary.json").exists() and not (out / "details.json").exists()
    assert "evcc" not in proc.stdout and "### Seed spread (seeds 1,2,3)" in proc.stdout
    for name in ("house_day", "fixed_day"):
        rs = [r for r in rows if r["profile"] == name]
        assert sorted(r["seed"] for r in rs) == [1, 2, 3]
        assert all(r["setting"] == "default" and isinstance(r["target_misses"], list) for r in rs)
        assert len({r["pv_kwh"] for r in rs}) == 1
        met = sum(1 for r in rs if not r["target_misses"])
        kinds = [m.split()[0] for r in rs for m in r["target_misses"]]
        cell = _table_row(proc.stdout, name)[-1]
        assert cell.startswith("%d/3" % met), cell
        for k in set(kinds):
            assert "%s %d/3" % (k, kinds.count(k)) in cell, cell
        cap = sorted(100 * r["capture_ratio"] for r in rs)
        assert _table_row(proc.stdout, name)[1] == "%.1f / %.1f / %.1f %%" % tuple(cap)
    # The oracle (surplus alone) depends on the house load: it differs per seed where the house
    # model runs and not where the profile brings base_grid_w (only the EV's noise is seeded).
    assert len({r["oracle_kwh"] for r in rows if r["profile"] == "house_day"}) == 3
    assert len({r["oracle_kwh"] for r in rows if r["profile"] == "fixed_day"}) == 1
    for seed in (1, 2, 3):
        met = sum(1 for r in rows if r["seed"] == seed and not r["target_misses"])
        assert "seed %d: %d/2" % (seed, met) in proc.stdout


def test_seed_specs():
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("1,3,7") == [1, 3, 7]
    assert parse_seeds("2-3, 9") == [2, 3, 9]


def test_a_bad_seed_spec_is_one_error_line_and_exit_2(tmp_path):
    prof = _short_day(tmp_path / "day.csv")
    for args, msg in ((["--seeds", "1-x"], "argument --seeds: '1-x': expected seeds like 1-5 or 1,3,7"),
                      (["--seeds", "5-1"], "argument --seeds: '5-1': range 5-1 runs backwards"),
                      (["--seeds", "1,2,1"], "argument --seeds: '1,2,1': a seed appears twice"),
                      (["--seeds", "1-3", "--seed", "2"], "--seed and --seeds exclude each other"),
                      (["--seeds", "1-3", "--settings", "peer"], "the peer setting has no targets")):
        proc = _bench(["--profiles", str(prof)] + args, tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("bench_pv.py: error: ") and msg in last, proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "out").exists()
