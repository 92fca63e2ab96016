# The rare paths of the Wi-Fi manager: installing it at boot (the network/wifi config and its
# rule), the setup access point going up or down, and the setup page served while it is up (and
# at any time on the normal network): a form for the Wi-Fi credentials. wifi.setup_call()
# imports this module for one call and drops it again, so it costs no RAM in between. The form
# posts application/x-www-form-urlencoded; the values go through the same config object as
# PUT /network/wifi, so validation is shared.
_HTML = {"Content-Type": "text/html; charset=UTF-8"}

_HEAD = ("<!DOCTYPE html><html><head><meta name=viewport content='width=device-width'>"
         "<title>PV charger setup</title></head><body style='font-family:sans-serif'>"
         "<h2>PV charger: Wi-Fi setup</h2>")
_FORM = ("<form method=post action=/setup>"
         "<p>Network (SSID)<br><input name=ssid maxlength=32 value='%s'></p>"
         "<p>Password<br><input name=password type=password maxlength=64></p>"
         "<p><button>Save and connect</button></p></form>"
         "<p>State: %s %s</p></body></html>")


def install(app):
    """wifi.install(app): network/wifi, network/state and the /setup route; the station's
    coroutine."""
    from firmware.net.wifi import WifiManager, setup_routes
    board = app.board
    cfg = wifi_config(app.store)
    cfg.load()
    app.configs[cfg.name] = cfg
    app.registry.add(cfg.name, cfg)
    sta = board.wlan_sta() if hasattr(board, "wlan_sta") else None
    suffix = board.unique_suffix() if hasattr(board, "unique_suffix") else ""
    wifi = WifiManager(sta, board.wlan_ap() if sta is not None else None, cfg, app.clock, None,
                       "pvcharger-" + suffix if suffix else "pvcharger",
                       getattr(board, "set_hostname", None), getattr(board, "wlan_failure", None))
    app.wifi = wifi
    app.registry.add("network/state", wifi)
    if hasattr(app, "http_routes"):
        app.http_routes.extend(setup_routes(wifi))
    return [wifi.run()]


def wifi_config(store):
    """The network/wifi config object."""
    from firmware.api.config import ConfigObject, Field, STR, INT
    from firmware.net.wifi import AP_AFTER_MS, _check
    return ConfigObject("network/wifi", [
        Field("ssid", STR, "", hi=32),
        Field("password", STR, "", hi=64, secret=True),
        Field("hostname", STR, "pvcharger", lo=1, hi=32),
        # Empty: an open setup access point (only up while no network is reachable).
        Field("ap_password", STR, "", hi=64, secret=True),
        Field("ap_after_s", INT, AP_AFTER_MS // 1000, lo=30, hi=3600),
    ], store, _check)


def config_error(v):
    """network/wifi's cross-field rule: an error message, or None."""
    if 0 < len(v["ap_password"]) < 8:
        return "Key 'ap_password' must be empty (open access point) or 8..64 characters (WPA2)"
    return None


def ap_up(wifi, on):
    """Open (WPA2 with ap_password, else open) or close the setup access point."""
    ap = wifi.ap
    if on:
        ap.active(True)
        pw = wifi.cfg["ap_password"]
        if pw:
            ap.config(essid=wifi.ap_name, password=pw, authmode=3)  # WPA2-PSK
        else:
            ap.config(essid=wifi.ap_name, authmode=0)               # open
        print("wifi: access point '%s' up, setup page at http://%s/setup"
              % (wifi.ap_name, ap.ifconfig()[0]))
    else:
        ap.active(False)
        print("wifi: access point down")
    wifi.ap_active = on


def escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&#39;").replace('"', "&quot;"))


def page(wifi, request):
    """GET: the form. POST: save the credentials (400 with the reason when invalid)."""
    msg = ""
    status = 200
    if request.method == "POST":
        from firmware.api.registry import ApiError
        form = request.form or {}
        ssid = (form.get("ssid") or "").strip()
        try:
            wifi.cfg.write({"ssid": ssid, "password": form.get("password") or ""})
            msg = ("<p>Saved. Connecting to '%s'; the access point closes once connected.</p>"
                   % escape(ssid))
        except ApiError as e:
            msg = "<p style='color:red'>%s</p>" % escape(e.message)
            status = 400
    return (_HEAD + msg + _FORM % (escape(wifi.cfg["ssid"]), wifi.state, escape(wifi.ip())),
            status, _HTML)
