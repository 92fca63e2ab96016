# The setup page served while the access point is up (and at any time on the normal network):
# a form for the Wi-Fi credentials. Imported on the first request (wifi.setup_routes), so it
# costs no RAM until someone opens it. The form posts application/x-www-form-urlencoded; the values
# go through the same config object as PUT /network/wifi, so validation is shared.
_HTML = {"Content-Type": "text/html; charset=UTF-8"}

_HEAD = ("<!DOCTYPE html><html><head><meta name=viewport content='width=device-width'>"
         "<title>PV charger setup</title></head><body style='font-family:sans-serif'>"
         "<h2>PV charger: Wi-Fi setup</h2>")
_FORM = ("<form method=post action=/setup>"
         "<p>Network (SSID)<br><input name=ssid maxlength=32 value='%s'></p>"
         "<p>Password<br><input name=password type=password maxlength=64></p>"
         "<p><button>Save and connect</button></p></form>"
         "<p>State: %s %s</p></body></html>")


def escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&#39;").replace('"', "&quot;"))


def show(wifi):
    return _page(wifi, ""), 200, _HTML


def save(wifi, form):
    from firmware.api.registry import ApiError
    ssid = (form.get("ssid") or "").strip()
    password = form.get("password") or ""
    try:
        wifi.cfg.write({"ssid": ssid, "password": password})
    except ApiError as e:
        return _page(wifi, "<p style='color:red'>%s</p>" % escape(e.message)), 400, _HTML
    msg = "<p>Saved. Connecting to '%s'; the access point closes once connected.</p>"
    return _page(wifi, msg % escape(ssid)), 200, _HTML


def _page(wifi, message):
    return _HEAD + message + _FORM % (escape(wifi.cfg["ssid"]), wifi.state, escape(wifi.ip()))
