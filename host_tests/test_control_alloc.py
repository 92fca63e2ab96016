"""The steady-state control step allocates nothing (micropython.heap_lock) in every mode."""
from control_helpers import run_lines


def test_step_allocates_nothing_in_any_mode():
    res = run_lines(r"""
import gc, micropython
cases = []
for mode in (0, 1, 2, 3):
    for pmode in (0, 1, 2, 3, 4):
        for bat in (255, 1):
            exc = pmode != 3
            m = mode if exc or mode < 2 else 0
            pm = mk(mode=m, cfg={"phase_switching_mode": pmode, "excess_charging_enable": exc,
                                 "meter_slot_battery_power": bat, "cloud_filter_mode": 3})
            pm.set_phases_wanted(3)
            site = Site(pm, pv_w=5000)
            site.run(20000)
            cases.append((pm, site))

def locked_run(cases):
    n = 0
    for pm, site in cases:
        # Long enough to wrap the 480 s ring, with changing weather, stale and fresh data,
        # a battery, phase changes and on/off changes; all without touching the heap.
        for i in range(1200):
            k = i % 97
            pm.grid_w = 300 - (k * 91) + site.car_w
            pm.grid_fresh = (i & 1) == 0
            pm.grid_age_ms = 200000 if 500 < i < 520 else 100
            pm.battery_w = (k - 48) * 37
            pm.charging_w = site.car_w
            pm.voltage_v = 0 if i & 4 else 236
            pm.blocked_flags = 8 if 700 < i < 705 else 0
            pm.switching = 900 < i < 910
            pm.step(500)
            pm.is_3phase = pm.wants_3phase
            site.car_w = pm.charge_manager_available_current * 230 // 1000
            n += 1
    return n

# Locals only inside the function: a new global name would grow the module dict (allocate).
n = 0
gc.collect()
micropython.heap_lock()
try:
    n = locked_run(cases)
finally:
    micropython.heap_unlock()
out(n, len(cases))
""", heap="1024wK")   # 40 power managers at once; one needs ~4 KB
    assert res == [[1200 * 40, 40]]


def test_heap_lock_catches_allocation():
    # The harness must be able to fail: an allocating call under heap_lock raises MemoryError.
    res = run_lines(r"""
import micropython
def probe():
    try:
        x = [1, 2, 3]
        return False
    except MemoryError:
        return True
micropython.heap_lock()
ok = probe()
micropython.heap_unlock()
out(ok)
""")
    assert res == [[True]]
