# Config objects: a schema of fields, validation shared by HTTP and MQTT, persistence through Store.
BOOL = 0
INT = 1
STR = 2
INT_LIST = 3

_KIND_NAMES = ("bool", "int", "string", "array of int")


class Field:
    """One key of a config object. `lo`/`hi` bound ints (and string/list lengths), `choices`
    lists the allowed ints. A `secret` field is write-only: it reads back as null."""

    def __init__(self, key, kind, default, lo=None, hi=None, choices=None, secret=False):
        self.key = key
        self.kind = kind
        self.default = default
        self.lo = lo
        self.hi = hi
        self.choices = choices
        self.secret = secret

    def check(self, value):
        """Return an error message for `value`, or None when it is valid."""
        k = self.kind
        if k == BOOL:
            ok = value is True or value is False
        elif k == INT:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif k == STR:
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            return "Key '%s' must be of type %s" % (self.key, _KIND_NAMES[k])
        if self.choices is not None and value not in self.choices:
            return "Key '%s' has invalid value %r: allowed are %s" % (
                self.key, value, ", ".join(str(c) for c in self.choices))
        size = value if k == INT else (len(value) if k in (STR, INT_LIST) else None)
        if size is not None:
            what = "value" if k == INT else "length"
            if self.lo is not None and size < self.lo:
                return "Key '%s' %s %d is below the minimum %d" % (self.key, what, size, self.lo)
            if self.hi is not None and size > self.hi:
                return "Key '%s' %s %d is above the maximum %d" % (self.key, what, size, self.hi)
        return None


class ConfigError(Exception):
    pass


class ConfigObject:
    """A persisted (store given) or volatile (store None) object of typed fields.

    `check(merged_values)` returns an error message for cross-field rules, or None.
    Listeners `fn(obj)` run after every accepted write."""

    def __init__(self, name, fields, store=None, check=None):
        self.name = name
        self.fields = fields
        self._by_key = {f.key: f for f in fields}
        self.store = store
        self.check = check
        self.values = {f.key: f.default for f in fields}
        self.load_error = None
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
        """Return the merged values for `payload`, or raise ConfigError naming the problem."""
        if not isinstance(payload, dict):
            raise ConfigError("JSON payload must be an object")
        for key in payload:
            if key not in self._by_key:
                raise ConfigError("JSON object has unknown key '%s'" % key)
        merged = dict(self.values)
        for key, value in payload.items():
            err = self._by_key[key].check(value)
            if err:
                raise ConfigError(err)
            merged[key] = value
        if self.check:
            err = self.check(merged)
            if err:
                raise ConfigError(err)
        return merged

    def write(self, payload):
        from firmware.api.registry import ApiError
        try:
            merged = self.validate(payload)
        except ConfigError as e:
            raise ApiError(400, e.args[0])
        self.apply(merged)

    def apply(self, merged):
        if self.store is not None:
            self.store.save(self.name, merged)
        self.values = merged
        for fn in self._listeners:
            fn(self)

    def load(self):
        """Load the persisted values at boot. A missing file keeps the defaults; a corrupt or
        invalid one is reported in load_error and replaced by the defaults (never a crash)."""
        if self.store is None:
            return
        try:
            saved = self.store.load(self.name)
            if saved is not None:
                # Keys added by a newer firmware keep their defaults; a file written by an
                # older firmware with keys we no longer know is reported, not trusted.
                self.values = self.validate(saved)
        except Exception as e:  # noqa: BLE001 - any failure means: defaults, and say so
            self.load_error = "%s: %s" % (self.name, e.args[0] if e.args else repr(e))
            print("config:", self.load_error, "- using defaults")
            self.values = {f.key: f.default for f in self.fields}
