# The request object handed to an extra route's handler (the Wi-Fi /setup page). Imported by
# firmware/api/http.py only for such a request, and forgets itself again: the registry's
# GET/PUT/POST, which is nearly all traffic, never needs it, so it costs no heap in between.
from firmware import forget


class Request:
    """method and path (str), body (bytes), form (the fields of an
    application/x-www-form-urlencoded body as a dict of str, else None)."""


def request(method, path, body, is_form):
    r = Request()
    r.method, r.path, r.body, r.form = method, path, body, None
    if is_form:
        r.form = {}
        for pair in body.split(b"&"):
            if pair:
                kv = pair.split(b"=", 1)
                r.form[_unquote(kv[0])] = _unquote(kv[1]) if len(kv) > 1 else ""
    # Rare (the setup page): drop this module, its heap comes back once the request is done.
    forget(__name__)
    return r


def _unquote(raw):
    """Form field bytes -> str: '+' is a space, %XX a byte (a malformed escape stays as is)."""
    parts = raw.replace(b"+", b" ").split(b"%")
    out = bytearray(parts[0])
    for part in parts[1:]:
        try:
            out.append(int(part[:2], 16))
            out.extend(part[2:])
        except ValueError:
            out.extend(b"%" + part)
    return out.decode()
