# The OLED status display: fill() reads a Status from the application, render() draws a page of
# it into a 128x64 framebuf (the 8x8 font), and the display task refreshes the current page once
# a second, rotates pages every ROTATE_MS, and a button press shows the next page (rotation
# pauses for HOLD_MS after a press). The Errors page is skipped while there is nothing on it.
#
# render() knows nothing about the application: it draws a plain Status object, so it runs
# unchanged on the board, in the simulator and in tests that check pixels of known screens.
# fill() reads what the API's power_manager/low_level_state and state show, straight from the
# objects behind them; a subsystem that is not installed shows as "unknown", never as a crash of
# the display task.
# (One module with few functions on purpose: every function costs ~100 B of heap; docs/board.md.)
import time

from micropython import const

# The bits that stop charging in every mode (1 and 2, stale meters, only in PV mode).
from firmware.control.power_manager import HARD_BLOCKS, MODE_PV

REFRESH_MS = const(1000)
ROTATE_MS = const(5000)
HOLD_MS = const(30000)
_POLL_MS = const(50)             # button poll: a press is >= 50 ms, this catches it

_W = const(128)
_H = const(64)
_CH = const(8)                   # framebuf font cell: 8x8 px
_COLS = const(16)                # characters per line

PAGE_POWER = const(0)
PAGE_NEXT = const(1)
PAGE_ERRORS = const(2)
PAGE_NET = const(3)
N_PAGES = const(4)

# Text tables as one string each, split where used: a tuple of strings costs ~60 B per entry.
_MODE_NAMES = "Fast Off PV Min+PV"             # charge mode 0..3
_PAGE_TITLES = "|Next action|Errors|Network"     # page 1 has the mode as its title
# config_error_flags bits 1, 2, 4, 8, 16
_CONFIG_ERRORS = "no contactor|max current|no chargers|no grid meter|meter lacks phase currents"
_SURPLUS = "Surplus %dW %s %dW"
_SWITCHING = "|starting|stopping chargers|CP disconnected|toggling contactor|" \
    "waiting for contactor"                       # switching_state 0..5
# charging_blocked bits 1, 2, 4 ... 128 (docs/control.md "charging_blocked bits")
_BLOCKED = "grid meter stale|battery meter stale|config error|contactor fault|" \
    "0 phases wanted|DLM limit|charger unreachable|input"
_MAX_KW = const(99999)           # the headline has room for 5 characters


class Status:
    """What the display shows; every field may be None when unknown (class-level defaults: an
    instance only stores what fill() or a test sets)."""
    mode = None            # charge mode 0..3
    grid_w = None          # + import / - export
    meter_stale = False
    charge_w = None        # power the chargers draw now
    charge_ma = None       # current per phase handed to the chargers
    phases = None          # 1 or 3
    charging = False
    action = None          # "Start in", "To 3p in", ... or None: nothing pending
    action_ms = 0          # countdown until the action may happen (0 = now/unknown)
    reason = ""            # why the action is pending
    blocked = False        # charging stopped by a block (charging_blocked); reason names it
    errors = ()            # short texts: "Meter stale", "Contactor fault", ...
    net_mode = ""          # "WiFi connected", "AP", "Host network", ...
    net_name = ""          # SSID joined or AP name offered
    ip = ""


def fmt_duration(ms):
    """0:07, 4:32, 1:05:00 - ms rounded up, so a countdown never shows 0:00 before it ends."""
    s = (ms + 999) // 1000 if ms and ms > 0 else 0   # None: unknown, shown as 0:00
    if s >= 3600:
        return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)
    return "%d:%02d" % (s // 60, s % 60)


def fmt_power(w):
    """(number, unit) with the number in at most 5 characters: ('-2350', 'W'), ('12.3', 'kW')."""
    if w is None:
        return "---", "W"
    if -10000 < w < 10000:
        return "%d" % w, "W"
    kw10 = (abs(w) + 50) // 100
    sign = "-" if w < 0 else ""
    if kw10 < 1000:
        return "%s%d.%d" % (sign, kw10 // 10, kw10 % 10), "kW"
    # 100 kW and more (a fault or a large site): whole kW, never wider than 5 characters.
    return "%s%d" % (sign, min(kw10 // 10, _MAX_KW // 10 if sign else _MAX_KW)), "kW"


def fmt_current(ma):
    if ma is None:
        return "--.-A"
    a = abs(ma)   # the sign apart: -500 // 1000 would show -0.5 A as -1.5 A
    return "%s%d.%dA" % ("-" if ma < 0 else "", a // 1000, a % 1000 // 100)


def wrap(text, cols=_COLS):
    """Split `text` into lines of at most `cols` characters, breaking at spaces where possible."""
    lines = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            while len(word) > cols:            # a word longer than a line is cut
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:cols])
                word = word[cols:]
            if not line:
                line = word
            elif len(line) + 1 + len(word) <= cols:
                line = line + " " + word
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


_ROWS = bytearray(8)             # big_text: one glyph's rows, read back (no allocation per frame)


def big_text(fb, s, x, y):
    """`s` in the 2x font at (x, y): each glyph is drawn 1x in place, read back, cleared and
    drawn again with 2x2 blocks (the 16x16 cell is empty before: nothing else is drawn there)."""
    rows = _ROWS
    for ch in s:
        fb.text(ch, x, y, 1)
        for gy in range(8):
            r = 0
            for gx in range(8):
                if fb.pixel(x + gx, y + gy):
                    r |= 1 << gx
            rows[gy] = r
        fb.fill_rect(x, y, 8, 8, 0)
        for gy in range(8):
            r = rows[gy]
            for gx in range(8):
                if r >> gx & 1:
                    fb.fill_rect(x + gx * 2, y + gy * 2, 2, 2, 1)
        x += 16


def render(fb, st, page, n_pages=N_PAGES):
    """Draw page `page` of Status `st` into `fb` (a 128x64 framebuf)."""
    fb.fill(0)
    if page == PAGE_POWER:
        mode = _MODE_NAMES.split()[st.mode] if st.mode is not None and 0 <= st.mode < 4 else "?"
        title = mode + ("  %dp" % st.phases if st.phases else "")
    else:
        title = _PAGE_TITLES.split("|")[page]
    # Inverted title bar with the page number on the right.
    fb.fill_rect(0, 0, _W, 10, 1)
    fb.text(title[:_COLS - 4], 1, 1, 0)
    tag = "%d/%d" % (page + 1, n_pages)
    fb.text(tag, _W - 8 * len(tag) - 1, 1, 0)
    if page == PAGE_POWER:
        # Headline: grid power in the 2x font, label and unit stacked on the left.
        if st.meter_stale:
            num, unit = "stale", ""
        else:
            num, unit = fmt_power(st.grid_w)
        fb.text("Grid", 0, 12, 1)
        fb.text(unit, 0, 21, 1)
        big_text(fb, num, _W - 16 * len(num), 12)
        fb.text("Car %s%s" % fmt_power(st.charge_w), 0, 33, 1)
        fb.text(fmt_current(st.charge_ma) + (" x%d" % st.phases if st.phases else ""), 0, 43, 1)
        if st.charging:
            fb.text("chg", _W - 24, 43, 1)
        if st.errors:
            fb.fill_rect(0, 54, _W, 10, 1)
            fb.text(("! %s" % st.errors[0])[:_COLS], 0, 55, 0)
        elif st.blocked:
            fb.text((st.reason or "Blocked")[:_COLS], 0, 55, 1)
        elif st.action:
            # The countdown is what matters: shorten the action's name, never the countdown.
            d = fmt_duration(st.action_ms)
            fb.text("%s %s" % (str(st.action)[:_COLS - 1 - len(d)], d), 0, 55, 1)
        else:
            fb.text("Steady", 0, 55, 1)
    elif page == PAGE_NEXT:
        if not st.action:
            fb.text("Nothing pending", 0, 14, 1)
            y = 26
        else:
            fb.text(str(st.action)[:_COLS], 0, 14, 1)
            d = fmt_duration(st.action_ms)
            big_text(fb, d, (_W - 16 * len(d)) // 2, 24)
            y = 44
        for line in wrap(st.reason or "")[: (_H - y) // 10]:
            fb.text(line, 0, y, 1)
            y += 10
    elif page == PAGE_ERRORS:
        if not st.errors:
            fb.text("No errors", 0, 14, 1)
            return
        y = 13
        for e in st.errors:
            first = True
            for line in wrap("%s" % e, _COLS - 1):
                if y > _H - _CH:
                    return
                # continuation lines are indented so separate errors stay apart
                fb.text(line, 0 if first else 8, y, 1)
                first = False
                y += 9
            y += 1
    else:
        fb.text((st.net_mode or "offline")[:_COLS], 0, 14, 1)
        fb.text((st.net_name or "")[:_COLS], 0, 26, 1)
        fb.text((st.ip or "")[:_COLS], 0, 38, 1)
        if st.net_mode == "AP":
            fb.text("open /setup", 0, 52, 1)


def fill(st, app, now_ms):
    """Update `st` (a Status) in place from `app`; returns st. Reads the power manager's own
    attributes (what power_manager/low_level_state shows): attribute names cost no heap here,
    dict keys would be a string object each. pm, charge_mode, configs and slots are the App's
    core; the subsystems (Wi-Fi, charge manager) may be missing."""
    pm = app.pm
    st.mode = app.charge_mode.mode
    st.grid_w = int(pm.power_at_meter)
    st.charge_w = pm.charging_w
    st.charge_ma = pm.charge_manager_allocated_current
    st.phases = 3 if pm.is_3phase else 1
    st.charging = bool(st.charge_w)
    for c in app.chargers:
        if c.charging:
            st.charging = True

    # Meter freshness: the grid meter's slot says when it last got a value.
    slots = app.slots
    idx = app.configs["power_manager/config"]["meter_slot_grid_power"]
    st.meter_stale = 0 <= idx < len(slots) and slots[idx].is_stale(now_ms)

    # The next action, its countdown and why.
    st.action = None
    st.action_ms = 0
    st.reason = ""
    avail = pm.power_available_filtered
    min_w = pm.overall_min_power
    sw = pm.switching_state or (1 if pm.switching else 0)
    is_on = pm.is_on_last
    wants_on = pm.wants_on_last
    wants_3p = pm.wants_3phase
    blocked = pm.charging_blocked
    # A block that stops charging now: the power manager skips its on/off decisions then, so
    # wants_on_last still holds the last one and must not be shown as "Start in".
    hard = blocked & HARD_BLOCKS or (blocked if st.mode == MODE_PV else 0)
    st.blocked = bool(hard)
    if blocked:
        names = [t for i, t in enumerate(_BLOCKED.split("|")) if blocked & (1 << i)]
    if sw:
        st.action = "Switch to " + ("3p" if wants_3p else "1p")
        st.reason = "Phase switch: " + (_SWITCHING.split("|")[sw] if 0 < sw < 6 else "")
    elif hard:
        st.reason = "Blocked: " + ", ".join(names)
    elif wants_on != is_on:
        st.action = "Start in" if wants_on else "Stop in"
        st.action_ms = pm.on_state_change_delay
        if st.mode == 0:
            st.reason = "Fast mode"
        else:
            st.reason = _SURPLUS % (avail, ">= min" if wants_on else "< min", min_w)
    elif is_on and pm.wants_3phase_last != pm.is_3phase:
        # The latest phase decision (wants_3phase_last) against the contactor, as Start/Stop
        # compares wants_on_last with is_on_last. (wants_3phase, the commanded phase, differs
        # from the contactor only once the decision may act: then the switch is due now and
        # its countdown is over. Compared with it, a pending switch was never shown, and a
        # switch due at once after a mode change showed the block's 4:00.)
        to3 = pm.wants_3phase_last
        st.action = ("To 3p in" if to3 else "To 1p in")
        st.action_ms = pm.phase_state_change_delay if wants_3p == pm.is_3phase else 0
        if st.mode == 0:
            st.reason = "Fast mode"
        else:
            st.reason = _SURPLUS % (avail, ">" if to3 else "<",
                                    pm.threshold_1to3 if to3 else pm.threshold_3to1)
    elif blocked:
        st.reason = "PV paused: " + ", ".join(names)   # Min+PV: the guaranteed power goes on
    elif is_on and pm.on_state_change_blocked:
        st.action = "Min. on time"
        st.action_ms = pm.on_state_change_delay
        st.reason = "Hysteresis holds charging on"
    elif is_on:
        st.reason = "Charging, %dW available" % avail
    elif st.mode == 1:
        st.reason = "Mode Off"
    else:
        st.reason = "Waiting: surplus %dW < %dW" % (avail, min_w)

    # Errors.
    errs = []
    if st.meter_stale:
        errs.append("Meter stale")
    ps = getattr(getattr(app, "charge_manager", None), "ps", None)
    if ps is not None and ps.error:
        errs.append("Contactor fault")
    flags = app.config_error_flags()
    for i, text in enumerate(_CONFIG_ERRORS.split("|")):
        if flags & (1 << i):
            errs.append("Config: " + text)
    for c in app.configs.values():
        if getattr(c, "load_error", None):
            errs.append("Bad file: " + c.name)
    if getattr(getattr(app, "board", None), "pin_map_error", None):
        errs.append("Bad board.json")
    st.errors = errs

    # Network.
    wifi = getattr(app, "wifi", None)
    if wifi is None or wifi.sta is None:
        st.net_mode = "Host network"
        st.net_name = ""
        st.ip = ""
    else:
        if wifi.ap_active:
            st.net_mode = "AP"
            st.net_name = wifi.ap_name
        else:
            st.net_mode = "WiFi " + wifi.state
            st.net_name = wifi.cfg["ssid"]
        st.ip = wifi.ip()
    return st


class DisplayTask:
    def __init__(self, app, display, button=None):
        self.app = app
        self.display = display
        self.button = button
        self.status = Status()
        self.page = PAGE_POWER
        self.shown_ms = None          # when the current page was first shown
        self.held_until = None        # rotation paused after a button press
        self.btn_last = 0

    def next_page(self):
        p = (self.page + 1) % N_PAGES
        if p == PAGE_ERRORS and not self.status.errors:
            p = (p + 1) % N_PAGES
        return p

    def refresh(self, now_ms):
        fill(self.status, self.app, now_ms)
        if self.shown_ms is None:
            self.shown_ms = now_ms
        held = self.held_until is not None and time.ticks_diff(self.held_until, now_ms) > 0
        if not held:
            # Forgotten once past: 6.2 days after a press ticks_diff() would read the old
            # deadline as ahead again and pause the rotation for another 6.2 days.
            self.held_until = None
        # (A negative age: the page is older than 6.2 days, the task was held up that long.)
        if not held and not 0 <= time.ticks_diff(now_ms, self.shown_ms) < ROTATE_MS:
            self.page = self.next_page()
            self.shown_ms = now_ms
        render(self.display.fb, self.status, self.page)
        self.display.show()

    def poll_button(self, now_ms):
        """A press (rising edge): next page now, hold it for a while."""
        if self.button is None:
            return
        v = self.button.value()
        if v and not self.btn_last:
            self.page = self.next_page()
            self.shown_ms = now_ms
            self.held_until = time.ticks_add(now_ms, HOLD_MS)
            self.refresh(now_ms)
        self.btn_last = v

    async def run(self):
        clock = self.app.clock
        since_ms = REFRESH_MS
        while True:
            now = clock.ticks_ms()
            self.poll_button(now)
            if since_ms >= REFRESH_MS:
                try:
                    self.refresh(now)
                except Exception as e:  # noqa: BLE001 - an I2C glitch, or a value fill() or
                    # render() did not foresee: try again next second. Ending the task would
                    # leave the last frame on the panel for good.
                    print("display:", repr(e))
                since_ms = 0
            await clock.sleep_ms(_POLL_MS)
            since_ms += _POLL_MS


def install(app):
    board = app.board
    display = board.display() if hasattr(board, "display") else None
    if display is None:
        print("display: none found")
        return []
    button = None
    has = getattr(board, "has_pin", None)
    if has is None or has("button"):
        button = board.pin("button", out=False)
    task = DisplayTask(app, display, button)
    app.display = task
    return [task.run()]
