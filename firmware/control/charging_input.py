# The charging power the power manager's P step works from (pm.charging_w), one rule for the
# board's glue (firmware/control_task.py) and the benchmark (tools/bench/mp_day.py).
#
# Why not just the measured power: `power_available = charging_w + gain x error` has a fixed
# point where a car drawing 95-100 % of its offer leaves its shortfall as steady export
# (~100-200 W at 2 kW with gain 1/2). Handing it the allocated power instead integrates that away,
# but a car that draws far less than offered (full battery, its own limit) would wind the
# allocation up. So: the allocated power, capped at _CAP_PCT % of the measured power, never below
# the measured power. Measured in docs/benchmark.md (total capture 86.5 % -> 90.6 %).
#
# Integer-only, allocation-free (small ints), every intermediate within +-2**30.
from micropython import const

_CAP_PCT = const(110)
_P_LIMIT_W = const(1000000)     # as power_manager: powers clamped to +-1 MW
_I_LIMIT_MA = const(1000000)    # currents clamped to 0..1000 A
_NOMINAL_V = const(230)
_V_MIN = const(180)
_V_MAX = const(270)


def control_charging_w(measured_w, allocated_ma, phases, voltage_v, cap_pct=_CAP_PCT):
    """measured_w: what the chargers draw now (W); allocated_ma: the charge manager's total
    allocated current per phase (pm.charge_manager_allocated_current, mA); phases: 1 or 3;
    voltage_v: measured phase voltage (nominal 230 V if implausible). cap_pct 100 gives the
    measured power alone."""
    if measured_w <= 0:
        return 0
    if measured_w > _P_LIMIT_W:
        measured_w = _P_LIMIT_W
    if allocated_ma <= 0:
        return measured_w
    if allocated_ma > _I_LIMIT_MA:
        allocated_ma = _I_LIMIT_MA
    if voltage_v < _V_MIN or voltage_v > _V_MAX:
        voltage_v = _NOMINAL_V
    # 1e6 mA x 270 V // 1000 = 2.7e5 W per phase; x 3 phases after the division.
    alloc_w = allocated_ma * voltage_v // 1000 * (3 if phases == 3 else 1)
    if cap_pct < 100:
        cap_pct = 100
    elif cap_pct > 200:
        cap_pct = 200
    cap_w = measured_w * cap_pct // 100     # <= 2e8
    w = alloc_w if alloc_w < cap_w else cap_w
    return w if w > measured_w else measured_w
