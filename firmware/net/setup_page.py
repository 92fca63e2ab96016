# The rare paths of the Wi-Fi manager: the setup access point going up or down, and the setup
# page served while it is up (and at any time on the normal network): a form for the Wi-Fi
# credentials. wifi.setup_call() imports this module for one call and drops it again, so it
# costs no RAM in between. The form posts application/x-www-form-urlencoded; the values go
# through the same config object as PUT /network/wifi, so validation is shared.
_HTML = {"Content-Type": "text/html; charset=UTF-8"}

_HEAD = ("<!DOCTYPE html><html><head><meta name=viewport content='width=device-width'>"
         "<title>PV charger setup</title></head><body style='font-family:sans-serif'>"
         "<h2>PV charger: Wi-Fi setup</h2>")
_FORM = ("<form method=post action=/setup>"
         "<p>Network (SSID)<br><input name=ssid maxlength=32 value='%s'></p>"
         "<p>Password<br><input name=password type=password maxlength=64></p>"
         "<p><button>Save and connect</button></p></form>"
         "<p>State: %s %s</p></body></html>")


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
