"""What any controller could reach on a day under the issue's limits (host CPython).

A perfect controller with instant response that may start at most `max_starts` times and must
keep its grid share <= `max_grid_share`: it picks its charging runs knowing the whole day. While
a run is on, it charges with the oracle's power (the largest power of the EV's range not above the
surplus) or, when the surplus is below the minimum, at the minimum power (importing the rest).
Dynamic programming over the 1-minute means of the day (PV - house), with a Lagrange weight on
grid energy swept until the grid share fits. If even this bound stays below 90 % of the oracle,
the capture target cannot be met on that day by any controller with those limits.
"""


def _run(surplus, dt_s, min_w, oracle_w, max_starts, w_cap, w_grid):
    """Best plan for the score w_cap * captured - w_grid * grid with at most max_starts runs:
    (score, captured_ws, grid_ws)."""
    neg = (-1e30, 0.0, 0.0)
    off = [(0.0, 0.0, 0.0)] + [neg] * max_starts     # off[k]: k starts used, EV off now
    on = [neg] * (max_starts + 1)
    for s in surplus:
        p = oracle_w(s)
        if p == 0:
            p = min_w
        cap = min(max(s, 0), p) * dt_s
        grid = p * dt_s - cap
        gain = w_cap * cap - w_grid * grid
        new_off = [max(off[k], on[k]) for k in range(max_starts + 1)]
        new_on = []
        for k in range(max_starts + 1):
            best = on[k]
            if k and off[k - 1][0] > best[0]:
                best = off[k - 1]
            new_on.append((best[0] + gain, best[1] + cap, best[2] + grid) if best[0] > -1e29 else neg)
        off, on = new_off, new_on
    return max(off + on)


def best_capture(series, account, max_starts=6, max_grid_share=0.03, dt_s=60):
    """series rows [t_s, pv_w, house_w, ...] (1-minute means); account: an Account (for the EV
    power range). Returns (upper_kwh, plan_kwh, oracle_kwh):
    upper_kwh  no plan with <= max_starts runs and grid share <= max_grid_share captures more
               (Lagrange dual of the grid-share constraint  grid*(1-g) - cap*g <= 0);
    plan_kwh   the best such plan found (a feasible plan: what a clairvoyant controller gets)."""
    surplus = [r[1] - r[2] for r in series]
    min_w = account.min_1p_w or account.min_3p_w
    return _sweep(surplus, account, dt_s, max_grid_share,
                  lambda w_cap, w_grid: _run(surplus, dt_s, min_w, account.oracle_w, max_starts,
                                             w_cap, w_grid))


def _sweep(surplus, account, dt_s, g, run):
    """Sweep the Lagrange weight on grid energy over run(w_cap, w_grid) -> (score, cap_ws,
    grid_ws): (upper_kwh, plan_kwh, oracle_kwh) as best_capture() returns them."""
    oracle = sum(account.oracle_w(s) for s in surplus) * dt_s / 3.6e6
    upper = float("inf")
    plan = 0.0
    for lam in (0.0, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 256, 1e3, 1e4):
        score, cap, grid = run(1 + lam * g, lam * (1 - g))
        upper = min(upper, score)
        if grid <= g * (cap + grid) and cap > plan:
            plan = cap
    return upper / 3.6e6, plan / 3.6e6, oracle


def _run_phases(surplus, dt_s, acct, max_starts, max_switches, w_cap, w_grid, switch_s):
    """As _run with the contactor: states (phase, on, starts used, switches used). On 1p the run
    charges min(max(surplus, 1p minimum), 1p maximum), on 3p the same within the 3p range; a
    phase switch (on or off) uses one of max_switches and, while on, charges nothing for switch_s
    of that minute (the stop / CP-off / contactor sequence); resuming after it is no new start.
    Starts on 1p with the EV off, as the benchmark does."""
    neg = (-1e30, 0.0, 0.0)
    ks, js = max_starts + 1, max_switches + 1
    frac = 1.0 - min(1.0, switch_s / dt_s)

    def at(ph3, on, k, j):
        return ((ph3 * 2 + on) * ks + k) * js + j

    cur = [neg] * (4 * ks * js)
    cur[at(0, 0, 0, 0)] = (0.0, 0.0, 0.0)
    ranges = ((acct.min_1p_w, acct.max_1p_w), (acct.min_3p_w, acct.max_3p_w))
    for s in surplus:
        new = [neg] * len(cur)
        for ph3 in (0, 1):
            lo, hi = ranges[ph3]
            p = lo if s < lo else (hi if s > hi else s)
            cap = min(max(s, 0), p) * dt_s
            grid = p * dt_s - cap
            gain = w_cap * cap - w_grid * grid
            for k in range(ks):
                for j in range(js):
                    # off now: was off or on (stop) on this phase, or switched while off/on
                    cands = [(cur[at(ph3, 0, k, j)], 0.0), (cur[at(ph3, 1, k, j)], 0.0)]
                    if j:
                        cands += [(cur[at(1 - ph3, 0, k, j - 1)], 0.0),
                                  (cur[at(1 - ph3, 1, k, j - 1)], 0.0)]
                    best = max(cands, key=lambda c: c[0][0])[0]
                    new[at(ph3, 0, k, j)] = best
                    # on now: stayed on, started (k), or switched while on / started with it
                    cands = [(cur[at(ph3, 1, k, j)], 1.0)]
                    if k:
                        cands.append((cur[at(ph3, 0, k - 1, j)], 1.0))
                    if j:
                        cands.append((cur[at(1 - ph3, 1, k, j - 1)], frac))
                        if k:
                            cands.append((cur[at(1 - ph3, 0, k - 1, j - 1)], frac))
                    b, f = max(cands, key=lambda c: c[0][0] + c[1] * gain)
                    if b[0] > -1e29:
                        new[at(ph3, 1, k, j)] = (b[0] + f * gain, b[1] + f * cap, b[2] + f * grid)
        cur = new
    return max(cur)


def best_capture_phases(series, account, max_starts=6, max_switches=4, max_grid_share=0.03,
                        dt_s=60, switch_s=60):
    """best_capture() for automatic 1p/3p with at most max_switches contactor moves (the issue's
    <= 4 a day): (upper_kwh, plan_kwh, oracle_kwh) with the same meaning. Used by bench_pv.py for
    a day that misses the phase-switch target: shows whether any controller could meet them all."""
    surplus = [r[1] - r[2] for r in series]
    return _sweep(surplus, account, dt_s, max_grid_share,
                  lambda w_cap, w_grid: _run_phases(surplus, dt_s, account, max_starts,
                                                    max_switches, w_cap, w_grid, switch_s))
