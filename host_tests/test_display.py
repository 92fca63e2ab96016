"""OLED: the SSD1306 driver's bytes on the bus, and pixels of known status screens."""
import sys
from pathlib import Path

from mp import run_mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import pbm2png  # noqa: E402

_FAKE_I2C = """
class FakeI2C:
    def __init__(self):
        self.log = []
    def writeto(self, addr, buf):
        self.log.append((addr, bytes(buf)))
    def writevto(self, addr, bufs):
        self.log.append((addr, b''.join(bytes(b) for b in bufs)))
"""


def test_driver_init_and_show_bytes():
    out = run_mp(_FAKE_I2C + """
from firmware.ui.ssd1306 import SSD1306
i2c = FakeI2C()
d = SSD1306(i2c)
d.init()
cmds = [b[1] for a, b in i2c.log if len(b) == 2 and b[0] == 0x80]
print(' '.join('%02x' % c for c in cmds))
i2c.log.clear()
d.fb.pixel(0, 0, 1)
d.fb.pixel(5, 9, 1)
d.fb.pixel(127, 63, 1)
d.show()
print(len(i2c.log), set(a for a, b in i2c.log))
data = i2c.log[-1][1]
print(len(data), data[0], data[1], data[1 + 128 + 5], data[1 + 7 * 128 + 127])
print(' '.join('%02x' % b[1] for a, b in i2c.log[:-1]))
""")
    lines = out.splitlines()
    init = lines[0].split()
    # Display off first, charge pump enabled (8d 14), display on last, 64-line multiplex.
    assert init[0] == "ae"
    assert "8d 14" in lines[0] and "a8 3f" in lines[0] and "da 12" in lines[0]
    assert lines[0].endswith("af 21 00 7f 22 00 07")  # on, then init() clears the screen
    assert lines[1] == "7 {60}"  # 6 address commands + one data transfer, all to 0x3C
    # 0x40 data prefix, then MONO_VLSB pages: (5, 9) is page 1 bit 1, (127, 63) page 7 bit 7.
    assert lines[2] == "1025 64 1 2 128"
    assert lines[3] == "21 00 7f 22 00 07"


_RENDER = """
from firmware.ui.display import render, Status
from firmware.ui.filedisplay import FileDisplay
import framebuf
d = FileDisplay(%r)
class Renderer:
    def render(self, st, page):
        render(d.fb, st, page)
r = Renderer()
st = Status()
st.mode = 2; st.grid_w = -2350; st.charge_w = 4140; st.charge_ma = 6000; st.phases = 3
st.charging = True; st.action = 'Stop in'; st.action_ms = 271500
st.reason = 'PV surplus below 1380W'
st.net_mode = 'AP'; st.net_name = 'pvcharger-1a2b'; st.ip = '192.168.4.1'
ref_buf = bytearray(1024)
ref = framebuf.FrameBuffer(ref_buf, 128, 64, framebuf.MONO_HLSB)

def same(x, y, w, h):
    # Region of the rendered page equals the reference drawing.
    for yy in range(y, y + h):
        for xx in range(x, x + w):
            if d.fb.pixel(xx, yy) != ref.pixel(xx, yy):
                return (xx, yy)
    return True

def big(s, x, y):
    g = framebuf.FrameBuffer(bytearray(8), 8, 8, framebuf.MONO_VLSB)
    for ch in s:
        g.fill(0); g.text(ch, 0, 0, 1)
        for gy in range(8):
            for gx in range(8):
                if g.pixel(gx, gy):
                    ref.fill_rect(x + 2 * gx, y + 2 * gy, 2, 2, 1)
        x += 16
"""


def test_power_page_pixels(tmp_path):
    pbm = tmp_path / "display.pbm"
    out = run_mp(_RENDER % str(pbm) + """
r.render(st, 0)
d.show()
ref.fill(0)
ref.fill_rect(0, 0, 128, 10, 1); ref.text('PV  3p', 1, 1, 0); ref.text('1/4', 128 - 24 - 1, 1, 0)
ref.text('Grid', 0, 12, 1); ref.text('W', 0, 21, 1)
big('-2350', 128 - 80, 12)
ref.text('Car 4140W', 0, 33, 1)
ref.text('6.0A x3', 0, 43, 1)
ref.text('Stop in 4:32', 0, 55, 1)
print(same(0, 0, 128, 10), same(0, 11, 128, 20), same(0, 33, 100, 18), same(0, 54, 128, 10))
st.meter_stale = True; st.errors = ['Meter stale']
r.render(st, 0)
ref.fill(0); ref.fill_rect(0, 54, 128, 10, 1); ref.text('! Meter stale', 0, 55, 0)
big('stale', 48, 12)
print(same(0, 54, 128, 10), same(32, 12, 96, 16))
st.meter_stale = False; st.errors = []
st.action = 'Min. on time'; st.action_ms = 83000
r.render(st, 0)
ref.fill(0); ref.text('Min. on tim 1:23', 0, 55, 1)
print(same(0, 54, 128, 10))
""")
    # A long action name is shortened, never the countdown after it.
    assert out.split() == ["True"] * 7
    # The frame file is a PBM the host tools read: header bar lit, row below it dark.
    w, h, rows = pbm2png.read_pbm(pbm)
    assert (w, h) == (128, 64)
    assert rows[9][127] == 1 and rows[10][127] == 0
    assert sum(map(sum, rows)) > 500  # the big digits light a lot of pixels
    png = pbm2png.png_bytes(rows, 2)
    assert png.startswith(b"\x89PNG") and len(png) > 200


def test_next_errors_network_pages(tmp_path):
    out = run_mp(_RENDER % str(tmp_path / "d.pbm") + """
r.render(st, 1)
ref.fill(0)
ref.fill_rect(0, 0, 128, 10, 1); ref.text('Next action', 1, 1, 0); ref.text('2/4', 103, 1, 0)
ref.text('Stop in', 0, 14, 1)
big('4:32', (128 - 64) // 2, 24)
ref.text('PV surplus below', 0, 44, 1); ref.text('1380W', 0, 54, 1)
print(same(0, 0, 128, 64))
st.errors = ['Meter stale (slot 0, 70 s)', 'Contactor fault']
r.render(st, 2)
ref.fill(0)
ref.fill_rect(0, 0, 128, 10, 1); ref.text('Errors', 1, 1, 0); ref.text('3/4', 103, 1, 0)
ref.text('Meter stale', 0, 13, 1); ref.text('(slot 0, 70 s)', 8, 22, 1)
ref.text('Contactor fault', 0, 32, 1)
print(same(0, 0, 128, 64))
r.render(st, 3)
ref.fill(0)
ref.fill_rect(0, 0, 128, 10, 1); ref.text('Network', 1, 1, 0); ref.text('4/4', 103, 1, 0)
ref.text('AP', 0, 14, 1); ref.text('pvcharger-1a2b', 0, 26, 1); ref.text('192.168.4.1', 0, 38, 1)
ref.text('open /setup', 0, 52, 1)
print(same(0, 0, 128, 64))
st.action = None
r.render(st, 1)
print(d.fb.pixel(64, 30), same(0, 0, 0, 0))
""")
    assert out.split() == ["True", "True", "True", "0", "True"]


def test_formatting():
    out = run_mp("""
from firmware.ui.display import fmt_duration, fmt_power, fmt_current, wrap
print(fmt_duration(0), fmt_duration(1), fmt_duration(59001), fmt_duration(3600000), fmt_duration(-5))
print(*[''.join(fmt_power(w)) for w in (None, -2350, 9999, 12345, -100000)])
print(fmt_current(None), fmt_current(6000), fmt_current(15999))
print(wrap('a bb ccc dddd', 6), wrap('abcdefghij', 4), wrap(''))
""")
    lines = out.splitlines()
    assert lines[0].split() == ["0:00", "0:01", "1:00", "1:00:00", "0:00"]
    assert lines[1].split() == ["---W", "-2350W", "9999W", "12.3kW", "-100kW"]
    assert lines[2].split() == ["--.-A", "6.0A", "15.9A"]
    assert lines[3] == "['a bb', 'ccc', 'dddd'] ['abcd', 'efgh', 'ij'] ['']"


def test_display_task_rotates_and_button_holds_page(tmp_path):
    """The real app on the Unix board: the display task rotates pages every 5 s, skips the empty
    Errors page, a button press shows the next page and holds it for 30 s."""
    out = run_mp("""
from firmware.app import App
from firmware.board.unix import UnixBoard
from firmware.clock import ManualClock
app = App(UnixBoard(%r), ManualClock())
t = app.display
seen = []
for now in range(0, 21000, 1000):
    t.refresh(now)
    seen.append(t.page)
print(seen)
btn = app.board.pin('button', out=False)
btn.value(1); t.poll_button(21000); btn.value(0); t.poll_button(21050)
held = []
for now in range(22000, 60000, 1000):
    t.refresh(now)
    held.append(t.page)
print(held[0], len(set(held[:28])), held[-1] != held[0])
print(t.display.frames > 20, len(t.status.errors) > 0)
t.page = 1
t.status.errors = []
print(t.next_page())
""" % str(tmp_path), heap="256wK")
    lines = out.splitlines()
    seen = eval(lines[-4])
    # A fresh board has config errors (no chargers...): all four pages, 5 s each.
    assert seen[:20] == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert lines[-3].split() == [str((seen[-1] + 1) % 4), "1", "True"]
    assert lines[-2].split() == ["True", "True"]
    assert lines[-1] == "3"      # without errors the Errors page is skipped
    assert (tmp_path / "display.pbm").exists()


# Stand-ins for the app's objects that fill() reads (attributes, a stale slot, a config).
_APP_FAKES = """
class Obj:
    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
class Slot:
    def is_stale(self, now):
        return True
class Cfg(dict):
    load_error = None
    name = 'power_manager/config'
"""


def test_status_reasons_and_errors_from_the_app():
    out = run_mp(_APP_FAKES + """
from firmware.ui.display import fill, Status
# What power_manager/low_level_state shows, as the power manager's attributes.
pm = Obj(power_at_meter=-2345.6, is_3phase=False, wants_3phase=False, wants_3phase_last=False,
         is_on_last=False,
         wants_on_last=True, on_state_change_delay=94000, power_available_filtered=1500,
         overall_min_power=1380, switching_state=0, switching=False,
         charge_manager_allocated_current=0, charging_blocked=0, on_state_change_blocked=False,
         phase_state_change_delay=0, threshold_1to3=0, threshold_3to1=0, charging_w=0)
app = Obj(pm=pm, charge_mode=Obj(mode=2), config_error_flags=lambda: 5, chargers=[],
          charge_manager=Obj(ps=Obj(error=2)))
app.configs = {'power_manager/config': Cfg(meter_slot_grid_power=0)}
app.slots = [Slot()]
st = fill(Status(), app, 0)
print(st.grid_w, st.phases, st.mode, st.meter_stale)
print(st.action, st.action_ms, st.reason)
print(st.errors)
for k, v in dict(is_on_last=True, wants_on_last=True, wants_3phase_last=True,
                 phase_state_change_delay=30000, threshold_1to3=4025,
                 power_available_filtered=4500).items():
    setattr(pm, k, v)
app.charge_manager.ps.error = 0
app.config_error_flags = lambda: 0
app.slots = []
st = fill(Status(), app, 0)
print(st.action, st.action_ms, st.reason, st.errors)
pm.switching_state = 2
print(fill(Status(), app, 0).reason)
""")
    lines = out.splitlines()
    assert lines[0] == "-2345 1 2 True"
    assert lines[1] == "Start in 94000 Surplus 1500W >= min 1380W"
    assert lines[2] == ("['Meter stale', 'Contactor fault', 'Config: no contactor', "
                        "'Config: no chargers']")
    assert lines[3] == "To 3p in 30000 Surplus 4500W > 4025W []"
    assert lines[4] == "Phase switch: stopping chargers"


def test_odd_values_format_sanely_and_never_crash_a_page():
    """Status fields may be None (its docstring), negative, huge or long: every page still
    renders, and the numbers read right (-0.5 A was -1.5 A; the headline kept <= 5 chars)."""
    out = run_mp("""
import framebuf
from firmware.ui.display import render, Status, fmt_power, fmt_current, fmt_duration, N_PAGES
print(fmt_current(-500), fmt_current(-1), fmt_current(-16000), fmt_duration(None))
print(*[''.join(fmt_power(w)) for w in (-100000, 99949, 1000000, -10**9, 10**12)])
fb = framebuf.FrameBuffer(bytearray(128 * 64 // 8), 128, 64, framebuf.MONO_VLSB)
cases = [dict(mode=None, grid_w=None, phases=None, charge_w=None, charge_ma=None),
         dict(mode=-1, grid_w=-10**9, phases=0, charge_w=10**12, charge_ma=-500,
              action='x' * 100, action_ms=10**12, reason='y' * 500, errors=('z' * 300,) * 5,
              net_mode='n' * 40, net_name='m' * 40, ip='1' * 40),
         dict(mode=7, grid_w=2345.6, charge_w=-3.5, charge_ma=15999.9, phases=3),
         dict(action='Start in', action_ms=None), dict(reason=None, action=None),
         dict(errors=(None, 7)), dict(ip=None, net_name=None, net_mode=None),
         dict(blocked=True, reason=None)]
for c in cases:
    st = Status()
    for k, v in c.items():
        setattr(st, k, v)
    for p in range(N_PAGES):
        try:
            render(fb, st, p)
        except Exception as e:
            print('crash', sorted(c), p, repr(e))
print('done')
""")
    lines = out.splitlines()
    assert lines[0].split() == ["-0.5A", "-0.0A", "-16.0A", "0:00"]
    assert lines[1].split() == ["-100kW", "99.9kW", "1000kW", "-9999kW", "99999kW"]
    assert lines[2:] == ["done"]


_BLOCK_APP = _APP_FAKES + """
from firmware.ui.display import fill, Status, render
pm = Obj(power_at_meter=-500, is_3phase=True, wants_3phase=True, wants_3phase_last=True,
         is_on_last=False,
         wants_on_last=True, on_state_change_delay=240000, power_available_filtered=5000,
         overall_min_power=4140, switching_state=0, switching=False,
         charge_manager_allocated_current=0, charging_blocked=0, on_state_change_blocked=True,
         phase_state_change_delay=240000, threshold_1to3=0, threshold_3to1=0, charging_w=0)
app = Obj(pm=pm, charge_mode=Obj(mode=2), config_error_flags=lambda: 0, chargers=[])
app.configs = {'power_manager/config': Cfg(meter_slot_grid_power=255)}
app.slots = []
class Rec:
    # a framebuf that keeps the text of the power page's bottom line
    line = None
    def text(self, s, x, y, c):
        if y == 55:
            self.line = s
    def fill(self, c): pass
    def fill_rect(self, *a): pass
    def pixel(self, x, y, c=None): return 0
fb = Rec()
def show(mode, blocked, is_on=False, wants_on=True):
    app.charge_mode.mode = mode
    pm.charging_blocked = blocked
    pm.is_on_last = is_on
    pm.wants_on_last = wants_on
    st = fill(Status(), app, 0)
    render(fb, st, 0)
    print('%s|%s|%s|%s' % (st.action, st.reason, st.blocked, fb.line))
"""


def test_a_block_shows_its_reasons_not_a_start_countdown():
    """Under a block that stops charging the power manager skips its on/off decisions, so
    wants_on_last keeps the last one: the display showed "Start in 4:00" with a surplus reason
    (a charger unreachable, a contactor fault, a stale meter in PV mode) and "Steady"."""
    out = run_mp(_BLOCK_APP + """
show(2, 64)            # PV, charger unreachable (glue bit 64)
show(0, 8 | 128)       # Fast, contactor fault + input
show(2, 1)             # PV, grid meter stale: PV control stops
show(3, 1, True, True) # Min+PV, grid meter stale: the guaranteed power goes on
show(3, 3 | 32)        # Min+PV, DLM limit below the minimum: blocked
show(2, 0)             # no block: the countdown as before
""")
    assert out.splitlines() == [
        "None|Blocked: charger unreachable|True|Blocked: charger",
        "None|Blocked: contactor fault, input|True|Blocked: contact",
        "None|Blocked: grid meter stale|True|Blocked: grid me",
        "None|PV paused: grid meter stale|False|Steady",
        "None|Blocked: grid meter stale, battery meter stale, DLM limit|True|Blocked: grid me",
        "Start in|Surplus 5000W >= min 4140W|False|Start in 4:00",
    ]


def test_display_task_keeps_running_after_an_unexpected_error(tmp_path):
    """A value fill() did not foresee (here power_at_meter None) must not end the display task:
    the panel would show its last frame for good. The next good second is drawn again."""
    out = run_mp("""
import asyncio
from firmware.app import App
from firmware.board.unix import UnixBoard
from firmware.clock import ManualClock
clock = ManualClock()
app = App(UnixBoard(%r), clock)
t = app.display
async def main():
    task = asyncio.create_task(t.run())
    await asyncio.sleep_ms(0)
    n0 = t.display.frames
    saved = app.pm.power_at_meter
    app.pm.power_at_meter = None
    for _ in range(60):
        clock.advance(50)
        await asyncio.sleep_ms(0)
    bad = t.display.frames
    app.pm.power_at_meter = saved
    for _ in range(60):
        clock.advance(50)
        await asyncio.sleep_ms(0)
    print(n0, bad, t.display.frames, task.done())
asyncio.run(main())
""" % str(tmp_path), heap="256wK")
    n0, bad, after, done = out.splitlines()[-1].split()
    assert int(n0) >= 1 and int(bad) == int(n0)     # no frame while fill() fails
    assert int(after) > int(bad) and done == "False"
