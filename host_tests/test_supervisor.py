"""Watchdog feeding policy, heap housekeeping, safe mode and the Wi-Fi setup page, on the Unix
port."""
import json

from mp import run_mp


def test_watchdog_feeds_only_while_control_loop_beats():
    out = run_mp("""
import asyncio
from firmware.clock import ManualClock
from firmware.supervisor.watchdog import Watchdog

class Board:
    started = None
    feeds = []
    def wdt_start(self, t):
        Board.started = t
    def wdt_feed(self):
        Board.feeds.append(now[0])

now = [1000]
beat = [None]
wd = Watchdog(Board(), None, lambda: beat[0])
# Control steps every 250 ms until t = 61 s, then the loop hangs; the watchdog decides each 1 s.
for t in range(1000, 121000, 250):
    now[0] = t
    if t < 61000:
        beat[0] = t
    if t % 1000 == 0:
        wd.tick(t)
print(len([f for f in Board.feeds if f < 61000]), Board.feeds[-1], wd.starving)

# The task starts the hardware WDT before its first decision.
clock = ManualClock(0)
wd2 = Watchdog(Board(), clock, lambda: clock.ticks_ms())
async def main():
    t = asyncio.create_task(wd2.run())
    await asyncio.sleep_ms(0)
    t.cancel()
asyncio.run(main())
print(Board.started, wd2.feeds)
""")
    lines = [ln for ln in out.splitlines() if not ln.startswith("watchdog:")]
    # Fed every second while alive; the last feed within STALE_MS (10 s) of the last beat,
    # far inside the 30 s hardware timeout; then nothing.
    assert lines[0] == "60 70000 True"
    assert lines[1] == "30000 1"
    assert "watchdog: control loop silent for 10" in out


def test_watchdog_catches_a_loop_that_never_starts():
    out = run_mp("""
from firmware.supervisor.watchdog import Watchdog
class Board:
    feeds = 0
    def wdt_feed(self):
        Board.feeds += 1
wd = Watchdog(Board(), None, lambda: None)
for t in range(0, 20000, 1000):
    wd.tick(t)
print(Board.feeds, wd.starving)
""")
    assert out.split()[-2:] == ["10", "True"]


def test_safe_mode_skips_the_app(tmp_path):
    (tmp_path / "SAFE_MODE").write_text("")
    out = run_mp("""
import os
import firmware.start as start
def boom(board):
    raise RuntimeError('app must not start in safe mode')
start.run = boom
os.putenv('PVC_DIR', %r)
start.main()
print('REPL free')
""" % str(tmp_path))
    assert "safe mode: application not started" in out
    assert out.strip().endswith("REPL free")


def test_setup_page_saves_credentials(tmp_path):
    out = run_mp("""
import asyncio
from firmware.api.store import Store
from firmware.net.wifi import wifi_config, WifiManager
from firmware.net.wifi import setup_routes as routes
cfg = wifi_config(Store(%r))
w = WifiManager(None, None, cfg, None, None)
(url, methods, handler), = routes(w)
print(url, methods)
class Req:
    def __init__(self, method, form):
        self.method = method
        self.form = form
async def main():
    body, status, hdr = await handler(Req('GET', None))
    print(status, hdr['Content-Type'], '<form method=post action=/setup>' in body)
    body, status, _ = await handler(Req('POST', {'ssid': ' my<net> ', 'password': 'pw'}))
    print(status, "Connecting to 'my&lt;net&gt;'" in body, cfg['ssid'], cfg['password'])
    body, status, _ = await handler(Req('POST', {'ssid': 'x' * 40}))
    print(status, 'above the maximum 32' in body, cfg['ssid'])
asyncio.run(main())
import sys
print('firmware.net.setup_page' in sys.modules, hasattr(sys.modules['firmware.net'], 'setup_page'))
""" % str(tmp_path))
    lines = out.splitlines()
    assert lines[0] == "/setup ['GET', 'POST']"
    assert lines[1] == "200 text/html; charset=UTF-8 True"
    assert lines[2] == "200 True my<net> pw"
    assert lines[3] == "400 True my<net>"
    # The page's module is dropped after each request: no RAM between requests.
    assert lines[4] == "False False"


def test_memory_collects_and_reports():
    out = run_mp("""
import asyncio, json
from firmware.clock import ManualClock
from firmware.api.registry import Registry
from firmware.supervisor import memory
class App:
    pass
app = App()
app.registry = Registry()
app.clock = ManualClock(0)
task, = memory.install(app)
async def main():
    t = asyncio.create_task(task)
    await asyncio.sleep_ms(0)
    app.clock.advance(1000)
    await asyncio.sleep_ms(0)
    t.cancel()
asyncio.run(main())
d = app.registry.read('system/memory')
print(json.dumps(d))
""")
    d = json.loads(out.splitlines()[0])
    # One collection at the start, one a (simulated) second later.
    assert d["collections"] == 2
    assert 0 < d["live_bytes"] <= d["peak_live_bytes"] < d["heap_total"]
    assert 0 < d["min_free_bytes"] < d["heap_total"]
