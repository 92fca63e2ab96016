# Status pages for a 128x64 monochrome display, drawn with framebuf's 8x8 font.
#
# The renderer knows nothing about the application: it draws a plain `Status` object (filled by
# firmware/ui/status.py from the registry), so it runs unchanged on the board, in the simulator
# and in tests that check pixels of known screens.
from micropython import const
import framebuf

W = const(128)
H = const(64)
_CH = const(8)          # framebuf font cell: 8x8 px
COLS = const(16)        # characters per line

PAGE_POWER = const(0)
PAGE_NEXT = const(1)
PAGE_ERRORS = const(2)
PAGE_NET = const(3)
N_PAGES = const(4)

MODE_NAMES = ("Fast", "Off", "PV", "Min+PV")
_PAGE_TITLES = ("", "Next action", "Errors", "Network")


class Status:
    """What the display shows; every field may be None when unknown."""

    def __init__(self):
        self.mode = None            # charge mode 0..3
        self.grid_w = None          # + import / - export
        self.meter_stale = False
        self.charge_w = None        # power the chargers draw now
        self.charge_ma = None       # current per phase handed to the chargers
        self.phases = None          # 1 or 3
        self.charging = False
        self.action = None          # "Start", "Stop", "1p -> 3p", ... or None: nothing pending
        self.action_ms = 0          # countdown until the action may happen (0 = now/unknown)
        self.reason = ""            # why the action is pending
        self.errors = []            # short texts: "Meter stale", "Contactor fault", ...
        self.net_mode = ""          # "WiFi", "AP", "connecting", "offline"
        self.net_name = ""          # SSID joined or AP name offered
        self.ip = ""


def fmt_duration(ms):
    """0:07, 4:32, 1:05:00 - ms rounded up, so a countdown never shows 0:00 before it ends."""
    s = (ms + 999) // 1000 if ms > 0 else 0
    if s >= 3600:
        return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)
    return "%d:%02d" % (s // 60, s % 60)


def fmt_power_parts(w):
    """(number, unit) with the number in at most 5 characters: ('-2350', 'W'), ('12.3', 'kW')."""
    if w is None:
        return "---", "W"
    if -10000 < w < 10000:
        return "%d" % w, "W"
    kw10 = (abs(w) + 50) // 100
    return "%s%d.%d" % ("-" if w < 0 else "", kw10 // 10, kw10 % 10), "kW"


def fmt_power(w):
    n, unit = fmt_power_parts(w)
    return n + unit


def fmt_current(ma):
    if ma is None:
        return "--.-A"
    return "%d.%dA" % (ma // 1000, ma % 1000 // 100)


def wrap(text, cols=COLS):
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


class Renderer:
    """Draws page `n` of a Status into `fb` (a 128x64 framebuf.FrameBuffer)."""

    def __init__(self, fb):
        self.fb = fb
        # One 8x8 glyph is drawn here, then scaled: the 2x font for the headline numbers.
        self._glyph_buf = bytearray(8)
        self._glyph = framebuf.FrameBuffer(self._glyph_buf, 8, 8, framebuf.MONO_VLSB)

    def big_text(self, s, x, y, scale=2):
        fb = self.fb
        g = self._glyph
        for ch in s:
            g.fill(0)
            g.text(ch, 0, 0, 1)
            for gy in range(8):
                for gx in range(8):
                    if g.pixel(gx, gy):
                        fb.fill_rect(x + gx * scale, y + gy * scale, scale, scale, 1)
            x += 8 * scale

    def header(self, title, page, n_pages):
        # Inverted title bar with the page number on the right.
        fb = self.fb
        fb.fill_rect(0, 0, W, 10, 1)
        fb.text(title[:COLS - 4], 1, 1, 0)
        tag = "%d/%d" % (page + 1, n_pages)
        fb.text(tag, W - 8 * len(tag) - 1, 1, 0)

    def render(self, st, page, n_pages=N_PAGES):
        self.fb.fill(0)
        if page == PAGE_POWER:
            self._power(st, n_pages)
        elif page == PAGE_NEXT:
            self._next(st, n_pages)
        elif page == PAGE_ERRORS:
            self._errors(st, n_pages)
        else:
            self._net(st, n_pages)

    def _power(self, st, n_pages):
        fb = self.fb
        mode = MODE_NAMES[st.mode] if st.mode is not None and 0 <= st.mode < 4 else "?"
        title = mode + ("  %dp" % st.phases if st.phases else "")
        self.header(title, PAGE_POWER, n_pages)
        # Headline: grid power in the 2x font, label and unit stacked on the left.
        if st.meter_stale:
            num, unit = "stale", ""
        else:
            num, unit = fmt_power_parts(st.grid_w)
        fb.text("Grid", 0, 12, 1)
        fb.text(unit, 0, 21, 1)
        self.big_text(num, W - 16 * len(num), 12)
        fb.text("Car " + fmt_power(st.charge_w), 0, 33, 1)
        fb.text(fmt_current(st.charge_ma) + (" x%d" % st.phases if st.phases else ""), 0, 43, 1)
        if st.charging:
            fb.text("chg", W - 24, 43, 1)
        if st.errors:
            fb.fill_rect(0, 54, W, 10, 1)
            fb.text(("! " + st.errors[0])[:COLS], 0, 55, 0)
        elif st.action:
            # The countdown is what matters: shorten the action's name, never the countdown.
            d = fmt_duration(st.action_ms)
            fb.text("%s %s" % (st.action[:COLS - 1 - len(d)], d), 0, 55, 1)
        else:
            fb.text("Steady", 0, 55, 1)

    def _next(self, st, n_pages):
        fb = self.fb
        self.header(_PAGE_TITLES[PAGE_NEXT], PAGE_NEXT, n_pages)
        if not st.action:
            fb.text("Nothing pending", 0, 14, 1)
            y = 26
        else:
            fb.text(st.action[:COLS], 0, 14, 1)
            d = fmt_duration(st.action_ms)
            self.big_text(d, (W - 16 * len(d)) // 2, 24)
            y = 44
        for line in wrap(st.reason)[: (H - y) // 10]:
            fb.text(line, 0, y, 1)
            y += 10

    def _errors(self, st, n_pages):
        fb = self.fb
        self.header(_PAGE_TITLES[PAGE_ERRORS], PAGE_ERRORS, n_pages)
        if not st.errors:
            fb.text("No errors", 0, 14, 1)
            return
        y = 13
        for e in st.errors:
            first = True
            for line in wrap(e, COLS - 1):
                if y > H - _CH:
                    return
                # continuation lines are indented so separate errors stay apart
                fb.text(line, 0 if first else 8, y, 1)
                first = False
                y += 9
            y += 1

    def _net(self, st, n_pages):
        fb = self.fb
        self.header(_PAGE_TITLES[PAGE_NET], PAGE_NET, n_pages)
        fb.text((st.net_mode or "offline")[:COLS], 0, 14, 1)
        fb.text(st.net_name[:COLS], 0, 26, 1)
        fb.text(st.ip[:COLS], 0, 38, 1)
        if st.net_mode == "AP":
            fb.text("open /setup", 0, 52, 1)
