# Wi-Fi: the station joins the network from the `network/wifi` config (flash file wifi.json),
# reconnects with exponential backoff, and detects a dead link by probe timeouts. When no network
# is configured, or none could be reached for AP_AFTER_MS, an access point with a setup page
# (firmware/net/setup_page.py) is opened; the station keeps retrying in the background.
#
# The WLAN objects come from the board (network.WLAN on the ESP32): this module imports no
# hardware, so its logic is tested on the Unix port with a fake WLAN and a ManualClock.
import time

from micropython import const

from firmware.api.config import ConfigObject, Field, STR, INT

CONNECT_TIMEOUT_MS = const(20000)     # one association + DHCP attempt
BACKOFF_MIN_MS = const(2000)
BACKOFF_MAX_MS = const(300000)        # retry at least every 5 min, forever
AP_AFTER_MS = const(180000)           # no network for 3 min (or none configured): open the AP
PROBE_PERIOD_MS = const(15000)
PROBE_FAILS = const(3)                # 3 silent probes in a row (~45 s + timeouts): link lost
_POLL_MS = const(250)

OFF = "off"                           # this board has no Wi-Fi to manage (Unix port)
CONNECTING = "connecting"
CONNECTED = "connected"
WAITING = "waiting"                   # backing off before the next attempt


def wifi_config(store):
    return ConfigObject("network/wifi", [
        Field("ssid", STR, "", hi=32),
        Field("password", STR, "", hi=64, secret=True),
        Field("hostname", STR, "pvcharger", lo=1, hi=32),
        # Empty: an open setup access point (only up while no network is reachable).
        Field("ap_password", STR, "", hi=64, secret=True),
        Field("ap_after_s", INT, AP_AFTER_MS // 1000, lo=30, hi=3600),
    ], store, _check)


def _check(v):
    if 0 < len(v["ap_password"]) < 8:
        return "Key 'ap_password' must be empty (open access point) or 8..64 characters (WPA2)"
    return None


class WifiManager:
    """`sta`/`ap`: network.WLAN-like objects (None on a board without Wi-Fi); `probe`: an object
    with `async check() -> bool` (firmware/net/probe.py)."""

    def __init__(self, sta, ap, cfg, clock, probe, ap_name="pvcharger", set_hostname=None):
        self.sta = sta
        self.set_hostname = set_hostname
        self.ap = ap
        self.cfg = cfg
        self.clock = clock
        self.probe = probe
        self.ap_name = ap_name
        self.state = OFF if sta is None else WAITING
        self.ap_active = False
        self.attempts = 0              # failed attempts since the last connection
        self.connects = 0
        self.link_losses = 0
        self.backoff_ms = 0
        self._lost_since = None        # ticks when we last had no network (None: connected)
        self._changed = False
        cfg.subscribe(self._on_config)

    def _on_config(self, _cfg):
        self._changed = True           # new credentials: drop the backoff, try now

    # --- what the API and the display show ---------------------------------------------------
    def ip(self):
        if self.state == CONNECTED:
            return self.sta.ifconfig()[0]
        if self.ap_active:
            return self.ap.ifconfig()[0]
        return ""

    def to_dict(self):
        return {"state": self.state, "ssid": self.cfg["ssid"], "ip": self.ip(),
                "ap_active": self.ap_active, "ap_ssid": self.ap_name if self.ap_active else "",
                "connects": self.connects, "link_losses": self.link_losses,
                "attempts": self.attempts, "backoff_ms": self.backoff_ms}

    # --- access point -----------------------------------------------------------------------
    def _ap_up(self, on):
        if on == self.ap_active or self.ap is None:
            return
        if on:
            self.ap.active(True)
            pw = self.cfg["ap_password"]
            if pw:
                self.ap.config(essid=self.ap_name, password=pw, authmode=3)  # WPA2-PSK
            else:
                self.ap.config(essid=self.ap_name, authmode=0)               # open
            print("wifi: access point '%s' up, setup page at http://%s/setup"
                  % (self.ap_name, self.ap.ifconfig()[0]))
        else:
            self.ap.active(False)
            print("wifi: access point down")
        self.ap_active = on

    def _maybe_ap(self, now_ms):
        if not self.cfg["ssid"]:
            self._ap_up(True)
        elif self._lost_since is not None and time.ticks_diff(
                now_ms, self._lost_since) >= self.cfg["ap_after_s"] * 1000:
            self._ap_up(True)

    # --- station ----------------------------------------------------------------------------
    async def _connect(self):
        """One attempt; True when associated with an address within CONNECT_TIMEOUT_MS."""
        sta = self.sta
        self.state = CONNECTING
        sta.active(True)
        if self.set_hostname is not None:
            try:
                self.set_hostname(self.cfg["hostname"])
            except (OSError, ValueError):
                pass                   # a name the port refuses is not worth staying offline
        try:
            sta.disconnect()
        except OSError:
            pass
        try:
            sta.connect(self.cfg["ssid"], self.cfg["password"])
        except OSError as e:
            print("wifi: connect failed:", e)
            return False
        waited_ms = 0
        while waited_ms < CONNECT_TIMEOUT_MS:
            if sta.isconnected():
                return True
            if self._changed:
                return False
            self._maybe_ap(self.clock.ticks_ms())
            await self.clock.sleep_ms(_POLL_MS)
            waited_ms += _POLL_MS
        return False

    async def _hold_link(self):
        """While connected: probe every PROBE_PERIOD_MS; return when the link is lost."""
        fails = 0
        while True:
            waited_ms = 0
            while waited_ms < PROBE_PERIOD_MS:
                if self._changed:
                    return "config changed"
                await self.clock.sleep_ms(_POLL_MS)
                waited_ms += _POLL_MS
            if not self.sta.isconnected():
                return "disassociated"
            if await self.probe.check():
                fails = 0
            else:
                fails += 1
                if fails >= PROBE_FAILS:
                    return "no answer from the router for %d probes" % fails

    async def _wait(self, delay_ms):
        self.state = WAITING
        self.backoff_ms = delay_ms
        waited_ms = 0
        while waited_ms < delay_ms and not self._changed:
            self._maybe_ap(self.clock.ticks_ms())
            await self.clock.sleep_ms(_POLL_MS)
            waited_ms += _POLL_MS
        self.backoff_ms = 0

    async def run(self):
        if self.sta is None:
            return                     # the host's network is always up
        self._lost_since = self.clock.ticks_ms()
        while True:
            self._changed = False
            self._maybe_ap(self.clock.ticks_ms())
            if not self.cfg["ssid"]:
                await self._wait(BACKOFF_MAX_MS)      # until credentials arrive
                continue
            if await self._connect():
                self.state = CONNECTED
                self.connects += 1
                self.attempts = 0
                self._lost_since = None
                self._ap_up(False)
                print("wifi: connected to '%s' as %s" % (self.cfg["ssid"], self.ip()))
                why = await self._hold_link()
                if not self._changed:
                    self.link_losses += 1
                print("wifi: link lost:", why)
                self._lost_since = self.clock.ticks_ms()
                try:
                    self.sta.disconnect()
                except OSError:
                    pass
                self.state = WAITING
                continue               # reconnect at once after a loss, back off after that
            if self._changed:
                continue
            self.attempts += 1
            # 2 s, 4 s, 8 s ... 5 min: a vanished router is not hammered, a rebooting one is
            # found again within seconds.
            delay = BACKOFF_MIN_MS << min(self.attempts - 1, 8)
            await self._wait(min(delay, BACKOFF_MAX_MS))


def setup_routes(wifi):
    """(url, methods, handler) for the HTTP server: GET /setup shows the form, POST saves it.
    The page's module is imported on the first request."""

    async def show(request):
        from firmware.net import setup_page
        return setup_page.show(wifi)

    async def save(request):
        from firmware.net import setup_page
        return setup_page.save(wifi, request.form or {})

    return [("/setup", ["GET"], show), ("/setup", ["POST"], save)]


class _LazyProbe:
    """Imports the DNS probe on the first link check (boards without Wi-Fi never do one)."""

    def __init__(self, clock, server):
        self.clock = clock
        self.server = server
        self._probe = None

    async def check(self):
        if self._probe is None:
            from firmware.net.probe import DnsProbe
            self._probe = DnsProbe(self.clock, self.server)
        return await self._probe.check()


def install(app):
    board = app.board
    cfg = wifi_config(app.store)
    cfg.load()
    app.configs[cfg.name] = cfg
    app.registry.add(cfg.name, cfg)
    sta = board.wlan_sta() if hasattr(board, "wlan_sta") else None
    ap = board.wlan_ap() if sta is not None else None
    suffix = board.unique_suffix() if hasattr(board, "unique_suffix") else ""
    probe = _LazyProbe(app.clock, lambda: sta.ifconfig()[3] if sta is not None else None)
    wifi = WifiManager(sta, ap, cfg, app.clock, probe,
                       "pvcharger-" + suffix if suffix else "pvcharger",
                       getattr(board, "set_hostname", None))
    app.wifi = wifi
    app.registry.add("network/state", wifi)
    if hasattr(app, "http_routes"):
        app.http_routes.extend(setup_routes(wifi))
    return [wifi.run()]
