"""Wi-Fi manager on the Unix port: a fake WLAN, a ManualClock, a scripted link probe."""
import socket
import threading

from mp import run_mp

_SETUP = """
import asyncio
from firmware.clock import ManualClock
from firmware.api.store import Store
from firmware.net.wifi import WifiManager, wifi_config, CONNECTED, WAITING

class FakeWlan:
    def __init__(self, ip):
        self.ip = ip
        self.on = False
        self.connected = False
        self.reachable = True     # does the network answer association requests?
        self.log = []
        self.cfg = {}
    def active(self, v=None):
        if v is None:
            return self.on
        self.on = v
        self.log.append('active %%s' %% v)
    def connect(self, ssid, pw):
        self.log.append('connect %%s %%s' %% (ssid, pw))
        self.connected = self.reachable
    def disconnect(self):
        self.connected = False
    def isconnected(self):
        return self.connected
    def ifconfig(self):
        return (self.ip, '255.255.255.0', '192.168.1.1', '192.168.1.1')
    def config(self, **kw):
        self.cfg.update(kw)

class Probe:
    answers = True
    checks = 0
    async def check(self):
        Probe.checks += 1
        return Probe.answers

clock = ManualClock()
store = Store(%r)
cfg = wifi_config(store)
cfg.load()
sta = FakeWlan('192.168.1.50')
ap = FakeWlan('192.168.4.1')
w = WifiManager(sta, ap, cfg, clock, Probe(), 'pvcharger-1a2b')

async def until(cond, limit_ms):
    start = clock.ticks_ms()
    while not cond() and clock.ticks_ms() - start < limit_ms:
        await asyncio.sleep_ms(0)
    return clock.ticks_ms() - start

async def scenario():
    sta.reachable = %s
    t = asyncio.create_task(w.run())
    await asyncio.sleep_ms(0)
%s
    t.cancel()

asyncio.run(scenario())
"""


def run_scenario(tmp_path, body, reachable=True):
    out = run_mp(_SETUP % (str(tmp_path), reachable, body))
    return "\n".join(ln for ln in out.splitlines() if not ln.startswith("wifi: "))


def test_no_credentials_opens_setup_ap_then_connects(tmp_path):
    out = run_scenario(tmp_path, """
    await until(lambda: False, 1000)
    print(w.ap_active, ap.cfg.get('essid'), ap.cfg.get('authmode'), w.state)
    cfg.write({'ssid': 'home', 'password': 'pw12345678'})
    ms = await until(lambda: w.state == CONNECTED, 60000)
    print(w.state, ms < 2000, w.ap_active, sta.log[-1], w.ip())
""")
    lines = out.splitlines()
    assert "True pvcharger-1a2b 0 waiting" in lines
    assert "connected True False connect home pw12345678 192.168.1.50" in lines
    # The credentials went to flash through the config store.
    assert '"ssid": "home"' in (tmp_path / "network_wifi.json").read_text()


def test_backoff_grows_and_ap_opens_after_timeout(tmp_path):
    (tmp_path / "network_wifi.json").write_text('{"ssid": "home", "password": "x"}')
    out = run_scenario(tmp_path, """
    starts = []
    last = None
    while clock.ticks_ms() < 400000:
        n = sum(1 for l in sta.log if l.startswith('connect'))
        if n != last:
            starts.append(clock.ticks_ms()); last = n
        if w.ap_active and not hasattr(w, '_ap_ms'):
            w._ap_ms = clock.ticks_ms()
        await asyncio.sleep_ms(0)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    print(gaps[:6])
    print(max(gaps) <= 300000 + 20000 + 1000, w._ap_ms)
    sta.reachable = True
    ms = await until(lambda: w.state == CONNECTED, 400000)
    print(w.state, w.ap_active, w.attempts)
""", reachable=False)
    lines = out.splitlines()
    gaps = eval(lines[0])
    # Each gap = one 20 s connect attempt + the backoff, which doubles from 2 s.
    backoffs = [g - 20000 for g in gaps]
    assert all(abs(b - e) <= 500 for b, e in zip(backoffs, [2000, 4000, 8000, 16000, 32000, 64000]))
    ok, ap_ms = lines[1].split()
    assert ok == "True"
    assert 180000 <= int(ap_ms) <= 181000   # AP after 3 min without a network
    assert lines[2] == "connected False 0"


def test_network_state_says_why_the_last_attempt_failed(tmp_path):
    (tmp_path / "network_wifi.json").write_text('{"ssid": "home", "password": "x"}')
    out = run_scenario(tmp_path, """
    await until(lambda: w.attempts == 1, 60000)
    print(repr(w.to_dict()['last_failure']))          # no board reader: the plain fact
    w.why_failed = lambda s: 'wrong password' if s is sta else 'bad sta'
    await until(lambda: w.attempts == 2, 60000)
    print(repr(w.to_dict()['last_failure']))
    sta.reachable = True
    await until(lambda: w.state == CONNECTED, 60000)
    print(w.state, repr(w.to_dict()['last_failure']))
""", reachable=False)
    assert out.splitlines() == ["'no connection within 20 s'", "'wrong password'",
                                "connected ''"]


def test_link_loss_by_probe_timeouts_reconnects(tmp_path):
    (tmp_path / "network_wifi.json").write_text('{"ssid": "home", "password": "x"}')
    out = run_scenario(tmp_path, """
    await until(lambda: w.state == CONNECTED, 30000)
    t0 = clock.ticks_ms()
    await until(lambda: False, 60000)
    print(w.state, Probe.checks >= 3, w.link_losses)
    Probe.answers = False             # router gone; the WLAN still claims to be associated
    sta.reachable = False
    await until(lambda: w.state != CONNECTED, 120000)
    print(w.state, w.link_losses, sta.isconnected())
    Probe.answers = True
    sta.reachable = True
    await until(lambda: w.state == CONNECTED, 120000)
    print(w.state, w.connects)
""")
    lines = out.splitlines()
    assert lines[0] == "connected True 0"
    assert lines[1].split()[1:] == ["1", "False"]
    assert lines[1].split()[0] in ("waiting", "connecting")
    assert lines[2] == "connected 2"


def test_an_unexpected_error_does_not_end_the_wifi_task(tmp_path):
    # A MemoryError (a full heap), a driver's ValueError or OSError where none was expected:
    # the Wi-Fi task must go on, or the board stays off the network (and without its setup
    # access point) until someone power-cycles it; the watchdog only watches the control loop.
    out = run_scenario(tmp_path, """
    errors = [MemoryError('no heap'), ValueError('bad')]
    real_connect = sta.connect
    def connect(ssid, pw):
        if errors:
            raise errors.pop(0)
        real_connect(ssid, pw)
    sta.connect = connect
    cfg.write({'ssid': 'home', 'password': 'pw12345678'})
    for i in range(20000):
        if w.state == CONNECTED:
            break
        await asyncio.sleep_ms(0)
    print(w.state, w.ap_active, len(errors))
    ap_errors = [OSError(12)]
    real_config = ap.config
    def config(**kw):
        if ap_errors:
            raise ap_errors.pop(0)
        real_config(**kw)
    ap.config = config
    sta.reachable = False            # the network is gone: the setup AP opens after 3 min
    sta.connected = False
    for i in range(20000):
        if w.ap_active:
            break
        await asyncio.sleep_ms(0)
    print(w.ap_active, len(ap_errors), clock.ticks_ms() < 600000)
""")
    assert out.splitlines() == ["connected False 0", "True 0 True"]


def test_wifi_config_validation(tmp_path):
    out = run_scenario(tmp_path, """
    from firmware.api.registry import ApiError
    for body in ({'ap_password': 'short'}, {'ssid': 'x' * 33}, {'hostname': ''}):
        try:
            cfg.write(body)
            print('accepted')
        except ApiError as e:
            print(e.status, e.message)
    print(cfg.to_dict()['password'])
""")
    lines = out.splitlines()
    assert lines[0].startswith("400 Key 'ap_password' must be empty")
    assert lines[1].startswith("400 Key 'ssid' length 33 is above the maximum 32")
    assert lines[2].startswith("400 Key 'hostname' length 0 is below the minimum 1")
    assert lines[3] == "None"


def _dns_responder():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def serve():
        try:
            data, addr = sock.recvfrom(512)
            sock.sendto(data[:2] + b"\x81\x83" + data[4:], addr)  # NXDOMAIN: still an answer
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    return sock


def test_dns_probe_answer_and_timeout():
    sock = _dns_responder()
    port = sock.getsockname()[1]
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    out = run_mp("""
import asyncio
from firmware.clock import Clock
from firmware.net.probe import DnsProbe
async def main():
    c = Clock(1)
    p = DnsProbe(c, lambda: '127.0.0.1', %d, 2000)
    print(await p.check())
    q = DnsProbe(c, lambda: '127.0.0.1', %d, 300)
    print(await q.check())
    print(await DnsProbe(c, lambda: None).check())
asyncio.run(main())
""" % (port, silent.getsockname()[1]))
    sock.close()
    silent.close()
    assert out.split() == ["True", "False", "False"]
