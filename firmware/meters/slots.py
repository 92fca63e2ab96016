# Meter slots 0..6: where every meter source (API meter, RS485 meter, simulator) leaves its
# values, and where the power manager and DLM read them. Value ids follow the reference vendor's
# meter model (DOMAIN 5).
import time

from firmware.api.config import ConfigObject, Field, INT, INT_LIST, STR
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
    def __init__(self, index):
        self.index = index
        self.value_ids = []
        self.values = []
        self.updated_ms = None
        self.update_count = 0
        self.stale_after_ms = 30000

    def set_value_ids(self, ids):
        if list(ids) != self.value_ids:
            self.value_ids = list(ids)
            self.values = [None] * len(ids)
            self.updated_ms = None

    def update(self, values, now_ms):
        """Store a complete reading, in value-id order."""
        vals = self.values
        for i in range(len(vals)):
            vals[i] = values[i]
        self.updated_ms = now_ms
        self.update_count += 1

    def get(self, value_id):
        try:
            return self.values[self.value_ids.index(value_id)]
        except ValueError:
            return None

    def has(self, value_id):
        return value_id in self.value_ids

    def age_ms(self, now_ms):
        if self.updated_ms is None:
            return _NEVER_MS
        return min(time.ticks_diff(now_ms, self.updated_ms), _NEVER_MS)

    def is_stale(self, now_ms):
        return self.age_ms(now_ms) > self.stale_after_ms


def _check_slot_config(v):
    ids = v["value_ids"]
    for vid in ids:
        if vid not in KNOWN_VALUE_IDS:
            return "Key 'value_ids' has unknown value id %d: known are %s" % (
                vid, ", ".join(str(k) for k in KNOWN_VALUE_IDS))
    if len(set(ids)) != len(ids):
        return "Key 'value_ids' lists a value id twice"
    if v["type"] == TYPE_API and not ids:
        return "An API meter needs at least one value id in 'value_ids'"
    return None


def slot_config(index, store, default_type=TYPE_NONE, default_ids=(POWER,)):
    return ConfigObject("meters/%d/config" % index, [
        Field("type", INT, default_type, choices=(TYPE_NONE, TYPE_API, TYPE_RS485, TYPE_SIM)),
        Field("display_name", STR, "", hi=32),
        Field("value_ids", INT_LIST, list(default_ids), hi=16),
        Field("model", STR, "", hi=24),
        Field("slave_id", INT, 1, 1, 247),
        Field("stale_timeout_s", INT, 30, 2, 600),
    ], store, _check_slot_config)


class SlotValues:
    """meters/N/values: the latest reading by value id (null before the first one)."""

    def __init__(self, slot):
        self.slot = slot

    def to_dict(self):
        s = self.slot
        # Rounded for people: a meter's float32 (or float arithmetic) gives 9.494999999999999.
        return {str(vid): (round(v, 4) if isinstance(v, float) else v)
                for vid, v in zip(s.value_ids, s.values)}


class SlotState:
    """meters/N/state: freshness of the slot; sources may add counters via `extra`."""

    def __init__(self, slot, config, clock):
        self.slot, self.config, self.clock = slot, config, clock
        self.extra = None  # callable returning a dict of source-specific counters

    def to_dict(self):
        s = self.slot
        now = self.clock.ticks_ms()
        out = {
            "type": self.config["type"],
            "age_ms": None if s.updated_ms is None else s.age_ms(now),
            "stale": s.is_stale(now),
            "readings": s.update_count,
        }
        if self.extra:
            out.update(self.extra())
        return out


class SlotUpdate:
    """meters/N/update: the API meter. Takes a JSON array in the order of the slot's value ids."""

    def __init__(self, slot, config, clock):
        self.slot, self.config, self.clock = slot, config, clock

    def to_dict(self):  # read back what an update must look like
        return {"value_ids": self.slot.value_ids}

    def write_body(self, payload):
        if self.config["type"] != TYPE_API:
            raise ApiError(400, "Meter slot %d is not an API meter (set type 1 in meters/%d/config)"
                           % (self.slot.index, self.slot.index))
        ids = self.slot.value_ids
        if not isinstance(payload, list):
            raise ApiError(400, "meters/%d/update takes a JSON array of %d numbers (value ids %s)"
                           % (self.slot.index, len(ids), ", ".join(str(i) for i in ids)))
        if len(payload) != len(ids):
            raise ApiError(400, "Expected %d values (value ids %s), got %d"
                           % (len(ids), ", ".join(str(i) for i in ids), len(payload)))
        for i, v in enumerate(payload):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v \
                    or v in (float("inf"), float("-inf")):
                raise ApiError(400, "Value %d (value id %d) must be a number" % (i, ids[i]))
        self.slot.update(payload, self.clock.ticks_ms())


def install_slots(app):
    """Create the 7 slots with their config/values/state/update objects."""
    app.slots = []
    for i in range(SLOT_COUNT):
        slot = MeterSlot(i)
        cfg = slot_config(i, app.store)
        cfg.load()

        def apply(c, slot=slot):
            slot.stale_after_ms = c["stale_timeout_s"] * 1000
            if c["type"] in (TYPE_API, TYPE_SIM):
                slot.set_value_ids(c["value_ids"])
            elif c["type"] == TYPE_NONE:
                slot.set_value_ids(())
        apply(cfg)
        cfg.subscribe(apply)
        app.slots.append(slot)
        app.configs[cfg.name] = cfg
        app.registry.add(cfg.name, cfg)
        app.registry.add("meters/%d/values" % i, SlotValues(slot))
        app.registry.add("meters/%d/state" % i, SlotState(slot, cfg, app.clock))
        app.registry.add("meters/%d/update" % i, SlotUpdate(slot, cfg, app.clock))
