# Fills the display's Status from the application: the same registry objects the HTTP API serves,
# plus a few app attributes. Everything is read defensively: a subsystem that is not installed
# shows as "unknown" on the display, never as a crash of the display task.
from firmware.ui.pages import Status

_CONFIG_ERRORS = (
    (1, "Config: no contactor"),
    (2, "Config: max current"),
    (4, "Config: no chargers"),
    (8, "Config: no grid meter"),
    (16, "Config: meter lacks phase currents"),
)
_SWITCHING = ("", "starting", "stopping chargers", "CP disconnected", "toggling contactor",
              "waiting for contactor")


def _read(registry, path):
    try:
        return registry.read(path)
    except Exception:  # noqa: BLE001 - not installed or failing: unknown
        return {}


def _phase(is_3p):
    return "3p" if is_3p else "1p"


def fill(st, app, now_ms):
    """Update `st` (a pages.Status) in place from `app`; returns st."""
    reg = app.registry
    low = _read(reg, "power_manager/low_level_state")
    pm_state = _read(reg, "power_manager/state")
    st.mode = _read(reg, "power_manager/charge_mode").get("mode")
    raw = low.get("power_at_meter")
    st.grid_w = None if raw is None else int(raw)
    pm = getattr(app, "pm", None)
    st.charge_w = getattr(pm, "charging_w", None)
    st.charge_ma = low.get("charge_manager_allocated_current")
    st.phases = None if "is_3phase" not in low else (3 if low["is_3phase"] else 1)
    chargers = getattr(app, "chargers", ())
    st.charging = any(getattr(c, "charging", False) for c in chargers) or bool(st.charge_w)

    # Meter freshness: the grid meter's slot says when it last got a value.
    st.meter_stale = False
    cfg = getattr(app, "configs", {}).get("power_manager/config")
    slots = getattr(app, "slots", None)
    if cfg is not None and slots is not None:
        try:
            idx = cfg["meter_slot_grid_power"]
            if 0 <= idx < len(slots) and slots[idx].is_stale(now_ms):
                st.meter_stale = True
        except (KeyError, AttributeError, TypeError):
            pass

    _next_action(st, low)
    _errors(st, app, pm_state)
    _network(st, app)
    return st


def _next_action(st, low):
    st.action = None
    st.action_ms = 0
    st.reason = ""
    if not low:
        return
    avail = int(low.get("power_available_filtered") or 0)
    min_w = int(low.get("overall_min_power") or 0)
    sw = low.get("switching_state") or 0
    if sw:
        st.action = "Switch to " + _phase(low.get("wants_3phase"))
        st.reason = "Phase switch: " + (_SWITCHING[sw] if 0 < sw < len(_SWITCHING) else "")
        return
    is_on = low.get("is_on_last")
    wants_on = low.get("wants_on_last")
    if wants_on != is_on:
        st.action = "Start in" if wants_on else "Stop in"
        st.action_ms = int(low.get("on_state_change_delay") or 0)
        if st.mode == 0:
            st.reason = "Fast mode"
        elif wants_on:
            st.reason = "Surplus %dW >= min %dW" % (avail, min_w)
        else:
            st.reason = "Surplus %dW < min %dW" % (avail, min_w)
        return
    is_3p = low.get("is_3phase")
    wants_3p = low.get("wants_3phase")
    if is_on and wants_3p is not None and wants_3p != is_3p:
        st.action = ("To 3p in" if wants_3p else "To 1p in")
        st.action_ms = int(low.get("phase_state_change_delay") or 0)
        if wants_3p:
            st.reason = "Surplus %dW > %dW" % (avail, int(low.get("threshold_1to3") or 0))
        else:
            st.reason = "Surplus %dW < %dW" % (avail, int(low.get("threshold_3to1") or 0))
        return
    blocked = low.get("charging_blocked") or 0
    if blocked:
        st.reason = "Charging blocked (0x%x)" % blocked
    elif is_on and low.get("on_state_change_blocked"):
        st.action = "Min. on time"
        st.action_ms = int(low.get("on_state_change_delay") or 0)
        st.reason = "Hysteresis holds charging on"
    elif is_on:
        st.reason = "Charging, %dW available" % avail
    elif st.mode == 1:
        st.reason = "Mode Off"
    else:
        st.reason = "Waiting: surplus %dW < %dW" % (avail, min_w)


def _errors(st, app, pm_state):
    errs = []
    if st.meter_stale:
        errs.append("Meter stale")
    if _read(app.registry, "power_manager/contactor_state").get("error"):
        errs.append("Contactor fault")
    flags = pm_state.get("config_error_flags") or 0
    for bit, text in _CONFIG_ERRORS:
        if flags & bit:
            errs.append(text)
    for c in getattr(app, "configs", {}).values():
        if getattr(c, "load_error", None):
            errs.append("Bad file: " + c.name)
    board_err = getattr(getattr(app, "board", None), "pin_map_error", None)
    if board_err:
        errs.append("Bad board.json")
    st.errors = errs


def _network(st, app):
    wifi = getattr(app, "wifi", None)
    if wifi is None or wifi.sta is None:
        st.net_mode = "Host network"
        st.net_name = ""
        st.ip = ""
        return
    if wifi.ap_active:
        st.net_mode = "AP"
        st.net_name = wifi.ap_name
    else:
        st.net_mode = "WiFi " + wifi.state
        st.net_name = wifi.cfg["ssid"]
    st.ip = wifi.ip()
