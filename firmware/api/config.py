# Config objects: a schema of fields, validation shared by HTTP and MQTT, persistence through Store.
#
# Heap diet (docs/board.md): a plain field is a named tuple, not an instance, and the code that
# only runs on a write, when a saved file is loaded or at boot (type/range checks, cross-field
# rules, loading, the core's schemas) lives in firmware/api/cold.py, imported for one call by
# cold() and dropped afterwards.
from firmware import call_once
from collections import namedtuple

BOOL = 0
INT = 1
STR = 2
INT_LIST = 3

# `lo`/`hi` bound ints (and string/list lengths), `choices` lists the allowed ints. A `secret`
# field is write-only: it reads back as null.
FieldTuple = namedtuple("Field", ("key", "kind", "default", "lo", "hi", "choices", "secret"))


class Field:
    """Field(...) gives a FieldTuple (80 B instead of ~200 B for an instance). Only a subclass
    with its own check(value) -> message|None is an instance (e.g. a list of objects)."""

    def __new__(cls, key, kind=None, default=None, lo=None, hi=None, choices=None, secret=False):
        if cls is Field:
            return FieldTuple(key, kind, default, lo, hi, choices, secret)
        return object.__new__(cls)

    def __init__(self, key, kind, default, lo=None, hi=None, choices=None, secret=False):
        self.key = key
        self.kind = kind
        self.default = default
        self.lo = lo
        self.hi = hi
        self.choices = choices
        self.secret = secret


_COLD = "firmware.api.cold"


def cold(fn, *args):
    """firmware.api.cold.<fn>(*args), with the module imported for this call and dropped
    afterwards (its heap comes back at the next collection). Nested calls share one import."""
    return call_once(_COLD, fn, *args)


class ConfigObject:
    """A persisted (store given) or volatile (store None) object of typed fields.

    `fields`: a sequence of fields, or the name of a schema in firmware/api/cold.py.
    `check(merged_values)` returns an error message for cross-field rules, or None (a callable,
    or the name of a rule in cold.py). Listeners `fn(obj)` run after every accepted write."""

    load_error = None  # set by load() when the saved file could not be used

    def __init__(self, name, fields, store=None, check=None):
        self.name = name
        self.fields = fields
        self.store = store
        self.check = check
        self.values = {f.key: f.default for f in fields}
        self._listeners = []

    def writable_keys(self):
        return list(self.values)

    def subscribe(self, fn):
        self._listeners.append(fn)

    def __getitem__(self, key):
        return self.values[key]

    def to_dict(self):
        out = dict(self.values)
        if type(self.fields) is not str:      # the core's schemas (by name) have no secrets
            for f in self.fields:
                if f.secret:
                    out[f.key] = None
        return out

    def validate(self, payload):
        """Return the merged values for `payload`, or raise ApiError(400) naming the problem."""
        return cold("validate", self, payload)

    def write(self, payload):
        merged = self.validate(payload)
        if self.store is not None:
            self.store.save(self.name, merged)
        self.values = merged
        self.load_error = None   # the saved file is whole again
        for fn in self._listeners:
            fn(self)

    def load(self):
        """Load the persisted values at boot. A missing file keeps the defaults; a corrupt or
        invalid one is reported in load_error and replaced by the defaults (never a crash)."""
        if self.store is not None and self.store.exists(self.name):
            cold("load", self)
