# Dynamic load management's part of the control step (manager.before_step), in its own module:
# imported only once DLM is enabled. No I/O, no allocation.
from micropython import const

_STALE_AGE_MS = const(1 << 29)  # Dlm.step: "no usable sample"
_CURRENT_IDS = (14, 18, 22)     # value ids of the L1..L3 currents (DOMAIN 5)
_ABSURD_A = const(1000)         # no house connection carries 1000 A
# A cut set-point keeps counting this long: cars take up to ~5 s to follow a lower offer (DOMAIN
# 4), a charger's reading lags its poll. Longer than that, a draw above it is not ours.
_ALLOWED_HOLD_MS = const(10000)


def step(m, now_ms, dt_ms):
    """The grid meter's phase currents and what the chargers draw -> m.dlm -> pm.dlm_limit_ma.
    `m` is the ChargeManager (its dlm_* buffers are set up with the Dlm)."""
    app = m.app
    pm = app.pm
    slot = app.slots[app.configs["power_manager/dynamic_load_config"]
                     ["meter_slot_grid_currents"]]
    g = m.dlm_grid_ma
    ok = True
    for p in range(3):
        v = slot.get(_CURRENT_IDS[p])
        if v is None:
            ok = False
        else:
            # Clamp before scaling (Dlm clamps to +-500 A anyway): on the ESP32 floats are
            # 32-bit, a garbled reading above 3.4e35 A times 1000 is inf there, and int(inf)
            # raises (the control task would die).
            if v > _ABSURD_A:
                v = _ABSURD_A
            elif v < -_ABSURD_A:
                v = -_ABSURD_A
            g[p] = int(v * 1000)
    age = slot.age_ms(now_ms) if ok and not slot.is_stale(now_ms) else _STALE_AGE_MS
    fresh = slot.update_count != m.dlm_count
    m.dlm_count = slot.update_count
    # What our chargers draw is taken out of the grid currents (the rest is the house). Only up
    # to what we allowed each one lately: a charger that ignores its set-point, or reports an
    # absurd current (a garbled answer), must not hide the house load from DLM; its excess
    # counts as house, so the others are cut (and a reading of 6553 A cannot mask an overload).
    d = m.dlm_draw_ma
    d[0] = d[1] = d[2] = 0
    for ch in m.chargers:
        lim_ma = ch.limit_ma
        if lim_ma >= ch.allowed_ma:
            ch.allowed_ma = lim_ma
            ch.allowed_left_ms = _ALLOWED_HOLD_MS
        elif ch.allowed_left_ms > dt_ms:
            ch.allowed_left_ms -= dt_ms
        else:
            ch.allowed_ma = lim_ma
            ch.allowed_left_ms = _ALLOWED_HOLD_MS
        if ch.has_meter or ch.charging:
            # Its heaviest phase, on every phase: a charger's own L1..L3 need not be the grid's
            # (rotated wiring, a 1p car on a 3p box). Dlm.limit() takes the smallest limit, so
            # the sum of the chargers' currents fits every phase; credited on all three, only
            # the chargers really on phase p count against p's room (docs/chargers.md).
            pc = ch.phase_currents_ma
            c = max(pc[0], pc[1], pc[2])
            if c > ch.allowed_ma:
                c = ch.allowed_ma
            d[0] += c
            d[1] += c
            d[2] += c
    lim = app.charge_limits
    is3 = pm.is_3phase
    m.dlm.step(dt_ms, g, age, fresh, d,
               lim["min_current_3p_ma"] if is3 else lim["min_current_1p_ma"])
    pm.dlm_limit_ma = m.dlm.limit()
