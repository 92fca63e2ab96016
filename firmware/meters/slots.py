# Meter slots 0..6: where every meter source (API meter, RS485 meter, simulator) leaves its
# values, and where the power manager and DLM read them. Value ids follow the reference vendor's
# meter model (DOMAIN 5).
#
# Heap diet (docs/board.md): a slot is its own meters/N/state object, meters/N/values and
# meters/N/update are registry tuples (function, slot[, write function]) instead of one instance
# each, and the slot configs' schema and rule (cold.py) and construction (cold_boot.py) live in
# firmware/api/, imported only when needed.
import time

from firmware.api.config import cold
from firmware.clock import keep_stamp
from firmware.api.registry import ApiError

SLOT_COUNT = 7

# Value ids (DOMAIN 5).
VOLTAGE_L1 = 1
VOLTAGE_L2 = 2
VOLTAGE_L3 = 3
CURRENT_L1 = 14
CURRENT_L2 = 18
CURRENT_L3 = 22
POWER = 74
ENERGY_IMPORT = 209
ENERGY_EXPORT = 211
STATE_OF_CHARGE = 387
KNOWN_VALUE_IDS = (VOLTAGE_L1, VOLTAGE_L2, VOLTAGE_L3, CURRENT_L1, CURRENT_L2, CURRENT_L3,
                   POWER, ENERGY_IMPORT, ENERGY_EXPORT, STATE_OF_CHARGE)

# Meter types of meters/N/config.
TYPE_NONE = 0
TYPE_API = 1
TYPE_RS485 = 2
TYPE_SIM = 3

_NEVER_MS = 1 << 29  # age reported for a slot that never had a reading (fits a small int)

class MeterSlot:
    """One slot; also the meters/N/state object (`extra`: a source's callable adding counters,
    set by the RS485 poller)."""

    extra = None
    cfg = None      # the slot's meters/N/config, set by install_slots
    clock = None

    def __init__(self, index):
        self.index = index
        # A slot without a meter (most of the 7) shares the empty tuple for both instead of two
        # empty lists of its own (128 B per slot on the Unix port).
        self.value_ids = ()
        self.values = ()
        self.updated_ms = None
        self.update_count = 0
        self.stale_after_ms = 30000

    def set_value_ids(self, ids):
        ids = list(ids)
        if ids != list(self.value_ids):
            self.value_ids = ids or ()
            self.values = [None] * len(ids) if ids else ()
            self.updated_ms = None

    def update(self, values, now_ms):
        """Store a complete reading, in value-id order."""
        vals = self.values
        for i in range(len(vals)):
            vals[i] = values[i]
        self.updated_ms = now_ms
        # Wraps to 0 at 2**30 (read with != only): on the ESP32 a larger int is a heap object
        # per reading, after ~1.7 years of a meter polled every 50 ms.
        self.update_count = (self.update_count + 1) & 0x3FFFFFFF

    def get(self, value_id):
        try:
            return self.values[self.value_ids.index(value_id)]
        except ValueError:
            return None

    def age_ms(self, now_ms):
        """Age of the last reading, at most AGE_CAP_MS (~3.1 days). The stamp is kept within
        ticks_diff()'s reach on every call (the control task calls this for every slot at
        least every few seconds): a meter silent for a week read as fresh otherwise."""
        t = self.updated_ms
        if t is None:
            return _NEVER_MS
        t = self.updated_ms = keep_stamp(now_ms, t)
        return time.ticks_diff(now_ms, t)

    def is_stale(self, now_ms):
        return self.age_ms(now_ms) > self.stale_after_ms

    def configured(self, c):
        """Listener of meters/N/config."""
        self.stale_after_ms = c["stale_timeout_s"] * 1000
        if c["type"] in (TYPE_API, TYPE_SIM):
            self.set_value_ids(c["value_ids"])
        elif c["type"] == TYPE_NONE:
            self.set_value_ids(())

    def to_dict(self):
        """meters/N/state: freshness of the slot, plus the source's counters."""
        now = self.clock.ticks_ms()
        out = {
            "type": self.cfg["type"],
            "age_ms": None if self.updated_ms is None else self.age_ms(now),
            "stale": self.is_stale(now),
            "readings": self.update_count,
        }
        if self.extra:
            out.update(self.extra())
        return out


def check_slot_config(v):
    """meters/N/config's cross-field rule (a callable: the RS485 subsystem wraps it)."""
    return cold("slot_config_error", v)


def values_dict(s):
    """meters/N/values: the latest reading by value id (null before the first one)."""
    # Rounded for people: a meter's float32 (or float arithmetic) gives 9.494999999999999.
    return {str(vid): (round(v, 4) if isinstance(v, float) else v)
            for vid, v in zip(s.value_ids, s.values)}


def update_shape(s):
    """meters/N/update read back: what an update must look like."""
    return {"value_ids": s.value_ids}


def api_update(s, payload):
    """meters/N/update: the API meter. Takes a JSON array in the order of the slot's value ids.
    (Resident, not cold: an API meter writes several times a second.)"""
    if s.cfg["type"] != TYPE_API:
        raise ApiError(400, "Meter slot %d is not an API meter (set type 1 in meters/%d/config)"
                       % (s.index, s.index))
    ids = s.value_ids
    if not isinstance(payload, list):
        raise ApiError(400, "meters/%d/update takes a JSON array of %d numbers (value ids %s)"
                       % (s.index, len(ids), ", ".join(str(i) for i in ids)))
    if len(payload) != len(ids):
        raise ApiError(400, "Expected %d values (value ids %s), got %d"
                       % (len(ids), ", ".join(str(i) for i in ids), len(payload)))
    for i, v in enumerate(payload):
        # Bounded, not only finite: what reads a slot scales it (A -> mA x1000, round(v, 4) for
        # meters/N/values), and 1.8e308 became inf there (a dead control task, `inf` in the JSON).
        # Nothing a home meter reports comes near 1e9 (W, A, V, kWh, %); NaN fails the test too.
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not -1e9 <= v <= 1e9:
            raise ApiError(400, "Value %d (value id %d) must be a number from -1e9 to 1e9"
                           % (i, ids[i]))
    s.update(payload, s.clock.ticks_ms())


def install_slots(app):
    """Create the 7 slots with their config/values/state/update objects (app.slots)."""
    cold("boot", "install_slots", app)
