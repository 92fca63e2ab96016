# The Wi-Fi station's loop (firmware/net/wifi.py's WifiManager.run on a board with a WLAN):
# connect with backoff, hold the link while DNS probes answer, open the setup access point when
# no network is configured or none was reachable for ap_after_s. `w` is the WifiManager.
import time

from micropython import const

from firmware.net.wifi import setup_call, CONNECTING, CONNECTED, WAITING

CONNECT_TIMEOUT_MS = const(20000)     # one association + DHCP attempt
BACKOFF_MIN_MS = const(2000)
BACKOFF_MAX_MS = const(300000)        # retry at least every 5 min, forever
PROBE_PERIOD_MS = const(15000)
PROBE_FAILS = const(3)                # 3 silent probes in a row (~45 s + timeouts): link lost
_POLL_MS = const(250)


def _maybe_ap(w, now_ms):
    """Open the AP when no SSID is configured or the network is gone for ap_after_s."""
    if w.ap_active or w.ap is None:
        return
    if not w.cfg["ssid"] or (w.lost_since is not None and time.ticks_diff(
            now_ms, w.lost_since) >= w.cfg["ap_after_s"] * 1000):
        setup_call("ap_up", w, True)


async def _wait(w, delay_ms):
    w.state = WAITING
    w.backoff_ms = delay_ms
    waited_ms = 0
    while waited_ms < delay_ms and not w.changed:
        _maybe_ap(w, w.clock.ticks_ms())
        await w.clock.sleep_ms(_POLL_MS)
        waited_ms += _POLL_MS
    w.backoff_ms = 0


async def run(w):
    sta = w.sta
    clock = w.clock
    cfg = w.cfg
    w.lost_since = clock.ticks_ms()
    while True:
        w.changed = False
        _maybe_ap(w, clock.ticks_ms())
        if not cfg["ssid"]:
            await _wait(w, BACKOFF_MAX_MS)      # until credentials arrive
            continue
        # One attempt: associated with an address within CONNECT_TIMEOUT_MS?
        w.state = CONNECTING
        sta.active(True)
        if w.set_hostname is not None:
            try:
                w.set_hostname(cfg["hostname"])
            except (OSError, ValueError):
                pass           # a name the port refuses is not worth staying offline
        try:
            sta.disconnect()
        except OSError:
            pass
        ok = False
        waited_ms = 0
        failure = ""
        try:
            sta.connect(cfg["ssid"], cfg["password"])
        except OSError as e:
            print("wifi: connect failed:", e)
            failure = "connect refused by the driver: %s" % e
            waited_ms = CONNECT_TIMEOUT_MS         # no attempt to wait for
        while waited_ms < CONNECT_TIMEOUT_MS:
            if sta.isconnected():
                ok = True
                break
            if w.changed:
                break
            _maybe_ap(w, clock.ticks_ms())
            await clock.sleep_ms(_POLL_MS)
            waited_ms += _POLL_MS
        if ok:
            w.state = CONNECTED
            w.connects += 1
            w.attempts = 0
            w.last_failure = ""
            w.lost_since = None
            if w.ap_active:
                setup_call("ap_up", w, False)
            print("wifi: connected to '%s' as %s" % (cfg["ssid"], w.ip()))
            # While connected: probe every PROBE_PERIOD_MS until the link is lost.
            fails = 0
            why = None
            while why is None:
                waited_ms = 0
                while waited_ms < PROBE_PERIOD_MS and not w.changed:
                    await clock.sleep_ms(_POLL_MS)
                    waited_ms += _POLL_MS
                if w.changed:
                    why = "config changed"
                elif not sta.isconnected():
                    why = "disassociated"
                else:
                    if w.probe is None:
                        from firmware.net.probe import DnsProbe
                        w.probe = DnsProbe(clock, lambda: sta.ifconfig()[3])
                    fails = 0 if await w.probe.check() else fails + 1
                    if fails >= PROBE_FAILS:
                        why = "no answer from the router for %d probes" % fails
            if not w.changed:
                w.link_losses += 1
            print("wifi: link lost:", why)
            w.lost_since = clock.ticks_ms()
            try:
                sta.disconnect()
            except OSError:
                pass
            w.state = WAITING
            continue               # reconnect at once after a loss, back off after that
        if w.changed:
            continue
        if not failure and w.why_failed is not None:
            failure = w.why_failed(sta)
        w.last_failure = failure or "no connection within %d s" % (CONNECT_TIMEOUT_MS // 1000)
        print("wifi: attempt failed:", w.last_failure)
        w.attempts += 1
        # 2 s, 4 s, 8 s ... 5 min: a vanished router is not hammered, a rebooting one is
        # found again within seconds.
        delay = BACKOFF_MIN_MS << min(w.attempts - 1, 8)
        await _wait(w, min(delay, BACKOFF_MAX_MS))
