"""Every intermediate of the control step stays an int within +-2**30 (the ESP32's small-int
range), proved by an instrumented run: the sources are rewritten so that the result of every
arithmetic operation passes through a checker, then fuzzed with extreme inputs on the Unix port.
Also a static check of the integer-only rules (no float literals, no `/`, no float())."""
import ast
import json
import random
import shutil
from pathlib import Path

from mp import run_mp, MicroPythonError, ROOT

MODULES = ["firmware/control/power_manager.py", "firmware/control/filters.py"]
_OPS = (ast.BinOp, ast.UnaryOp)


class _Wrap(ast.NodeTransformer):
    """x op y -> _chk(x op y); a op= b -> a = _chk(a op b); const(...) left alone."""

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == "const":
            return node   # must stay a compile-time constant expression
        self.generic_visit(node)
        return node

    def _wrap(self, node):
        return ast.Call(func=ast.Name(id="_chk", ctx=ast.Load()), args=[node], keywords=[])

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._wrap(node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return node
        return self._wrap(node)

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        load = ast.parse(ast.unparse(node.target), mode="eval").body
        value = self._wrap(ast.BinOp(left=load, op=node.op, right=node.value))
        return ast.Assign(targets=[node.target], value=value, lineno=node.lineno)


_CHK = r"""
LIM = 1 << 30
stats = [0, 0]
def _chk(v):
    if type(v) is not int and type(v) is not bool:
        raise TypeError("non-int intermediate %r" % (v,))
    if v >= LIM or v < -LIM:
        raise OverflowError("intermediate %d outside +-2**30" % v)
    a = -v if v < 0 else v
    if a > stats[0]:
        stats[0] = a
    stats[1] += 1
    return v
"""


def _instrument(tmp_path, sources):
    for rel, text in sources.items():
        tree = ast.parse(text)
        tree = ast.fix_missing_locations(_Wrap().visit(tree))
        body = ast.unparse(tree)
        # after `from micropython import const` so const() still folds
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("from _chk import _chk\n" + body + "\n")
    for pkg in ("firmware", "firmware/control"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / pkg / "__init__.py", tmp_path / pkg / "__init__.py")
    (tmp_path / "_chk.py").write_text(_CHK)


def test_instrumentation_can_fail(tmp_path):
    _instrument(tmp_path, {"firmware/control/probe.py": "def f(a):\n    return a * a\n"})
    out = run_mp("import sys\nsys.path.insert(0, %r)\nfrom firmware.control.probe import f\n"
                 "print(f(2**15 - 1))\ntry:\n    f(2**15)\nexcept OverflowError:\n"
                 "    print('caught')\n" % str(tmp_path))
    assert out.split() == [str((2**15 - 1) ** 2), "caught"]


def _scenarios(seed, n):
    rnd = random.Random(seed)
    big = [0, 1, -1, 2**29, -2**29, 2**30 - 1, -2**30, 10**6, -10**6, 10**7, -10**7]

    def val(lo, hi):
        return rnd.choice(big) if rnd.random() < 0.3 else rnd.randint(lo, hi)

    out = []
    for _ in range(n):
        cfg = {"phase_switching_mode": rnd.randint(0, 4),
               "excess_charging_enable": rnd.random() < 0.8,
               "meter_slot_grid_power": rnd.choice([0, 3, 255, 7, -1]),
               "target_power_from_grid": val(-5000, 5000),
               "guaranteed_power": val(0, 20000),
               "cloud_filter_mode": rnd.randint(0, 3),
               "meter_slot_battery_power": rnd.choice([255, 1, 255]),
               "battery_mode": rnd.randint(0, 1),
               "battery_inverted": rnd.random() < 0.5,
               "battery_deadzone": val(0, 1000)}
        dbg = {"hysteresis_time": rnd.choice([0, 10, 60, 300, 3600, 10**9])}
        lim = {"max_current_ma": val(0, 64000), "min_current_1p_ma": val(0, 16000),
               "min_current_3p_ma": val(0, 16000), "contactor_installed": rnd.random() < 0.7,
               "charger_count": rnd.randint(0, 3), "stale_ms": val(1000, 200000)}
        steps = []
        for _ in range(rnd.randint(20, 200)):
            steps.append([rnd.choice([0, 1, 250, 500, 1000, 7000, -5, 10**9]) if rnd.random() < 0.2
                          else rnd.choice([250, 500]),
                          val(-20000, 20000), rnd.random() < 0.7, val(0, 200000),
                          val(-8000, 8000), val(0, 200000), val(0, 30000),
                          rnd.choice([0, 230, 241, 5000, -3]), rnd.random() < 0.5,
                          rnd.random() < 0.05, rnd.choice([0, 0, 0, 8, 64]),
                          val(0, 40000), rnd.choice([0, 1, 2, 3]), rnd.choice([0, 1, 3])])
        out.append([cfg, dbg, lim, steps])
    return out


_DRIVER = r"""
import sys, json
sys.path.insert(0, %r)
import _chk
from firmware.control.power_manager import PowerManager
n = 0
fh = open(%r)
for line in fh:
    cfg, dbg, lim, steps = json.loads(line)
    pm = PowerManager()
    pm.configure(cfg, dbg, lim)
    for (dt, grid, fresh, gage, bat, bage, chg, volt, is3, sw, blk, dlm, mode, pw) in steps:
        if n %% 37 == 0:
            pm.set_charge_mode(mode)
            pm.set_phases_wanted(pw)
        pm.grid_w = grid
        pm.grid_fresh = fresh
        pm.grid_age_ms = gage
        pm.battery_w = bat
        pm.battery_age_ms = bage
        pm.charging_w = chg
        pm.voltage_v = volt
        pm.is_3phase = is3
        pm.switching = sw
        pm.blocked_flags = blk
        pm.dlm_limit_ma = dlm
        pm.step(dt)
        n += 1
        # Invariants of every step, whatever the inputs.
        cur = pm.charge_manager_available_current
        mn = pm.min_current_3p_ma if pm.is_3phase else pm.min_current_1p_ma
        assert cur == 0 or mn <= cur <= pm.max_current_limited, (n, cur)
        if not pm.wants_on or sw or blk:
            assert cur == 0, (n, "current while off/switching/blocked")
        assert pm.wants_on == pm.is_on_last
        assert 0 <= pm.on_state_change_delay <= pm.hysteresis_ms
        assert 0 <= pm.phase_state_change_delay <= pm.hysteresis_ms
        assert pm.on_state_change_blocked == (pm.on_state_change_delay > 0)
        if pm.charge_mode == 1:
            assert cur == 0, (n, "current in Off mode")
        if (pm.charge_mode == 2 and pm.excess_charging_enable
                and (gage < 0 or gage > pm.stale_ms or pm.meter_slot_grid_power == 255)):
            assert cur == 0, (n, "PV current on stale data")
        for k, v in pm.low_level_state().items():
            if type(v) is not int and type(v) is not bool or not -2**30 <= v < 2**30:
                raise OverflowError("%%s = %%r" %% (k, v))
print(json.dumps([n, _chk.stats[0], _chk.stats[1]]))
"""


def test_every_intermediate_within_2_pow_30(tmp_path):
    _instrument(tmp_path, {m: (ROOT / m).read_text() for m in MODULES})
    scen = _scenarios(1234, 150)
    try:
        (tmp_path / "scen.json").write_text("\n".join(json.dumps(x) for x in scen))
        out = run_mp(_DRIVER % (str(tmp_path), str(tmp_path / "scen.json")), heap="1024wK")
    except MicroPythonError as e:
        raise AssertionError(str(e)[-2000:])
    steps, max_abs, checks = json.loads(out.strip().splitlines()[-1])
    assert steps == sum(len(s[3]) for s in scen)
    assert checks > 10 * steps         # the instrumentation really ran
    print("max |intermediate|", max_abs, "checks", checks)
    assert 0 < max_abs < 2**30


def test_integer_only_rules():
    for m in MODULES:
        tree = ast.parse((ROOT / m).read_text())
        for node in ast.walk(tree):
            assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), m
            assert not isinstance(node, ast.Div), "%s: use // (line %d)" % (m, node.lineno)
            assert not (isinstance(node, ast.Name) and node.id == "float"), m
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                for bad in ("time", "machine", "network", "socket", "asyncio", "os"):
                    assert bad not in names, "%s imports %s" % (m, bad)
