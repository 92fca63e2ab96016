# Config objects: a schema of fields, validation shared by HTTP and MQTT, persistence through Store.
#
# Heap diet (docs/board.md): a plain field is a named tuple, not an instance, and the code that
# only runs on a write or when a saved file is loaded (type/range checks, cross-field rules,
# loading) lives in firmware/api/config_write.py, imported for that call and dropped afterwards.
import sys
from collections import namedtuple

BOOL = 0
INT = 1
STR = 2
INT_LIST = 3

# `lo`/`hi` bound ints (and string/list lengths), `choices` lists the allowed ints. A `secret`
# field is write-only: it reads back as null.
FieldTuple = namedtuple("Field", ("key", "kind", "default", "lo", "hi", "choices", "secret"))


def field(key, kind, default, lo=None, hi=None, choices=None, secret=False):
    return FieldTuple(key, kind, default, lo, hi, choices, secret)


class Field:
    """Field(...) gives a FieldTuple (80 B instead of ~200 B for an instance). Only a subclass
    with its own check(value) -> message|None is an instance (e.g. a list of objects)."""

    def __new__(cls, *args, **kw):
        if cls is Field:
            return field(*args, **kw)
        return object.__new__(cls)

    def __init__(self, key, kind, default, lo=None, hi=None, choices=None, secret=False):
        self.key = key
        self.kind = kind
        self.default = default
        self.lo = lo
        self.hi = hi
        self.choices = choices
        self.secret = secret


_WRITE_MODULE = "firmware.api.config_write"


def call_write(fn, *args):
    """firmware.api.config_write.<fn>(*args), with the module imported for this call and
    dropped afterwards (its heap comes back at the next collection). Nested calls share one
    import."""
    mod = __import__(_WRITE_MODULE, None, None, ("validate",))
    try:
        return getattr(mod, fn)(*args)
    finally:
        sys.modules.pop(_WRITE_MODULE, None)
        sys.modules["firmware.api"].__dict__.pop("config_write", None)


class ConfigObject:
    """A persisted (store given) or volatile (store None) object of typed fields.

    `check(merged_values)` returns an error message for cross-field rules, or None.
    Listeners `fn(obj)` run after every accepted write."""

    load_error = None  # set by load() when the saved file could not be used

    def __init__(self, name, fields, store=None, check=None):
        self.name = name
        self.fields = fields
        self.store = store
        self.check = check
        self.values = {f.key: f.default for f in fields}
        self._listeners = []

    def writable_keys(self):
        return [f.key for f in self.fields]

    def subscribe(self, fn):
        self._listeners.append(fn)

    def __getitem__(self, key):
        return self.values[key]

    def to_dict(self):
        out = dict(self.values)
        for f in self.fields:
            if f.secret:
                out[f.key] = None
        return out

    def validate(self, payload):
        """Return the merged values for `payload`, or raise ApiError(400) naming the problem."""
        return call_write("validate", self, payload)

    def write(self, payload):
        merged = self.validate(payload)
        if self.store is not None:
            self.store.save(self.name, merged)
        self.values = merged
        for fn in self._listeners:
            fn(self)

    def load(self):
        """Load the persisted values at boot. A missing file keeps the defaults; a corrupt or
        invalid one is reported in load_error and replaced by the defaults (never a crash)."""
        if self.store is not None and self.store.exists(self.name):
            call_write("load", self)
