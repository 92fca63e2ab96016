# Code needed only for a while (a config write, a meter's read plan, the setup page, MQTT
# discovery) is imported for the call and forgotten after: nothing keeps it referenced, so its
# heap comes back at the next collection. (Its names stay interned: qstrs are never freed.)
import sys


def forget(name):
    """Drop module `name` (e.g. "firmware.api.cold") from sys.modules and from its package."""
    sys.modules.pop(name, None)
    parts = name.rsplit(".", 1)
    pkg = sys.modules.get(parts[0])
    if pkg is not None:
        pkg.__dict__.pop(parts[1], None)


def call_once(name, fn, *args):
    """Module `name`'s fn(*args), the module imported for this call and forgotten after. Nested
    calls share one import (the inner call forgets it, the outer finds it gone)."""
    try:
        return getattr(__import__(name, None, None, (fn,)), fn)(*args)
    finally:
        forget(name)
