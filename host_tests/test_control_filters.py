"""Cloud filter: windows 0/120/240/480 s, the fast (~1 s) value, resets, gaps, bounds."""
from mp import run_mp
import json

_PRE = r"""
import json
from firmware.control.filters import CloudFilter, window_s
def feed(f, w, ms, dt=250):
    t = 0
    while t < ms:
        f.update(dt, w, True)
        t += dt
def out(*a):
    print(json.dumps(a))
"""


def _run(code):
    return [json.loads(x) for x in run_mp(_PRE + code).splitlines() if x.startswith("[")]


def test_window_lengths():
    assert _run("out([window_s(m) for m in (0, 1, 2, 3, 7, -1)])") == [[[0, 120, 240, 480, 0, 0]]]


def test_moving_average_over_the_window():
    res = _run(r"""
for mode in (1, 2, 3):
    f = CloudFilter()
    f.set_window(window_s(mode))
    n = window_s(mode)
    feed(f, 1000, 1000 * n + 2000)       # longer than the window: all buckets 1000
    a = f.filtered_w
    feed(f, -1000, 1000 * n // 2)        # half the window at -1000
    b = f.filtered_w
    feed(f, -1000, 1000 * n // 2 + 1000)  # all of it (+ the bucket still open)
    out(mode, a, b, f.filtered_w, f.fast_w)
""")
    # half way the average is 0 (+-1 bucket that straddles the step)
    for mode, a, b, c, fast in res:
        n = (0, 120, 240, 480)[mode]
        assert a == 1000
        assert abs(b) <= 2000 // n + 1, (mode, b)
        assert c == -1000 and fast == -1000


def test_mode_0_filtered_is_the_fast_value_and_fast_follows_within_a_second():
    res = _run(r"""
f = CloudFilter()
f.set_window(0)
feed(f, 500, 5000)
out(f.filtered_w, f.fast_w)
seq = []
for i in range(8):
    f.update(250, 2500, True)
    seq.append(f.fast_w)
out(seq, f.filtered_w == f.fast_w)
""")
    assert res[0] == [500, 500]
    seq, same = res[1]
    assert same
    assert seq[0] > 500            # a fresh sample is seen at once
    assert all(a <= b for a, b in zip(seq, seq[1:]))
    assert seq[4] >= 2400 and seq[-1] == 2500   # ~1 s average


def test_ring_wraps_and_window_change_keeps_history():
    res = _run(r"""
f = CloudFilter()
f.set_window(480)
for k in range(1300):                 # 1300 s of a slow ramp: the ring wraps twice
    f.update(1000, k, True)
# buckets hold k-1 (closed each second with the previous sample); last 480 of them
out(f.filtered_w)
f.set_window(120)
out(f.filtered_w)
f.set_window(240)
out(f.filtered_w)
""")
    # last closed bucket holds 1298: window 480 -> mean of 819..1298, 120 -> 1179..1298
    assert res == [[(819 + 1298) // 2], [(1179 + 1298) // 2], [(1059 + 1298) // 2]]


def test_reset_and_full_reset():
    res = _run(r"""
f = CloudFilter()
f.set_window(240)
feed(f, -3000, 100000)
feed(f, 1000, 2000)
out(f.filtered_w < -2000, f.fast_w)
f.reset()
out(f.filtered_w == f.fast_w, f._filled)
feed(f, 1000, 10000)
out(f.filtered_w)
f.reset(True)
f.update(250, 700, True)
out(f.fast_w, f.filtered_w)           # old numbers are gone entirely
""")
    assert res == [[True, 1000], [True, 0], [1000], [700, 700]]


def test_gap_without_samples_and_no_data():
    res = _run(r"""
f = CloudFilter()
f.set_window(120)
f.update(5000, 0, False)              # nothing yet: no buckets invented
out(f._filled, f.has_data, f.fast_w)
feed(f, 600, 3000)
f.update(10000, 0, False)             # a 10 s gap repeats the last second
out(f._filled, f.filtered_w)
f.update(10**6, 0, False)             # a huge gap fills at most the ring
out(f._filled)
""")
    assert res == [[0, False, 0], [12, 600], [480]]


def test_many_samples_per_bucket_and_extremes_stay_bounded():
    res = _run(r"""
f = CloudFilter()
f.set_window(480)
for i in range(5000):                 # 1 ms steps: 1000 samples per bucket (sum folded)
    f.update(1, 10**6 if i & 1 else -10**6, True)
out(abs(f.fast_w) <= 10**6, f._acc_n <= 256, abs(f._acc_w) < 2**30)
for i in range(1000):
    f.update(1000, 10**9, True)       # clamped to 1 MW
out(f.filtered_w, abs(f._sum) < 2**30)
""")
    assert res == [[True, True, True], [10**6, True]]
