# Wi-Fi: the station joins the network from the `network/wifi` config (flash file wifi.json),
# reconnects with exponential backoff, and detects a dead link by probe timeouts. When no network
# is configured, or none could be reached for AP_AFTER_MS, an access point with a setup page
# (firmware/net/setup_page.py) is opened; the station keeps retrying in the background.
#
# The WLAN objects come from the board (network.WLAN on the ESP32): this module imports no
# hardware, so its logic is tested on the Unix port with a fake WLAN and a ManualClock.
# Heap: the station's loop (station.py) is imported only on a board with a WLAN; the rare paths
# (switching the access point, the setup page) live in setup_page.py, imported for one call and
# dropped again (setup_call); the DNS probe is imported on the first link check.
from firmware import call_once

from micropython import const


AP_AFTER_MS = const(180000)           # no network for 3 min (or none configured): open the AP
_RESTART_MS = const(5000)             # after an unexpected error in the station's loop

OFF = "off"                           # this board has no Wi-Fi to manage (Unix port)
CONNECTING = "connecting"
CONNECTED = "connected"
WAITING = "waiting"                   # backing off before the next attempt
_SETUP_MODULE = "firmware.net.setup_page"


def wifi_config(store):
    """The network/wifi config object (built by setup_page.py: runs once at boot)."""
    return setup_call("wifi_config", store)


def _check(v):
    """network/wifi's cross-field rule (setup_page.py: runs on a write only)."""
    return setup_call("config_error", v)


def setup_call(fn, *args):
    """setup_page.<fn>(*args) with the module imported for this call only: afterwards neither
    sys.modules nor the package keeps it, so its code is garbage at the next collection."""
    return call_once(_SETUP_MODULE, fn, *args)


class WifiManager:
    """`sta`/`ap`: network.WLAN-like objects (None on a board without Wi-Fi); `probe`: an object
    with `async check() -> bool`, None = firmware/net/probe.py's DnsProbe, made on first use."""

    def __init__(self, sta, ap, cfg, clock, probe, ap_name="pvcharger", set_hostname=None,
                 why_failed=None):
        self.sta = sta
        self.set_hostname = set_hostname
        # why_failed(sta) -> text: the board's reading of the driver's status after a failed
        # attempt (a wrong password and a vanished network look alike from here).
        self.why_failed = why_failed
        self.last_failure = ""         # why the last attempt failed ("" once connected)
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
        self.lost_since = None        # ticks when we last had no network (None: connected)
        self.changed = False
        cfg.subscribe(self._on_config)

    def _on_config(self, _cfg):
        self.changed = True           # new credentials: drop the backoff, try now

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
                "attempts": self.attempts, "backoff_ms": self.backoff_ms,
                "last_failure": self.last_failure}

    async def run(self):
        if self.sta is None:
            return                     # the host's network is always up
        while True:
            try:
                # The station's loop lives in station.py: a board without Wi-Fi never loads it.
                from firmware.net.station import run
                await run(self)
            except Exception as e:  # noqa: BLE001 - no heap for the setup page, a driver error
                # Never give up the network: the watchdog only watches the control loop, so a
                # dead Wi-Fi task would leave the board unreachable, without its setup AP, until
                # someone power-cycles it.
                print("wifi: error, restarting:", repr(e))
                self.state = WAITING
                await self.clock.sleep_ms(_RESTART_MS)


def setup_routes(wifi):
    """(url, methods, handler) for the HTTP server: GET /setup shows the form, POST saves it.
    The page's module is imported for each request and dropped again."""

    async def setup(request):
        return setup_call("page", wifi, request)

    return [("/setup", ["GET", "POST"], setup)]


def install(app):
    """Register network/wifi and network/state, add the /setup route; return the coroutine
    running the station (built by setup_page.py: runs once at boot)."""
    return setup_call("install", app)
