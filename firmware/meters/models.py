# Meter models as register tables: data, no code per model. decode.py turns a table into the
# fewest Modbus requests for the value ids wanted and decodes the answers.
#
# A table: name, source (where the register map comes from), fc (3 holding / 4 input),
# max_regs (longest read the meter accepts), fields: (value id, 0-based address, encoding,
# scale). Value ids follow DOMAIN 5; PHASE_POWER_L1..3 are internal (the sign of the current).
# Energies and voltages are "slow" values (read every few polls); power, currents and phase
# powers are read every poll.

# Value ids (DOMAIN 5), defined once with the slots that hold them.
from firmware.meters.slots import (  # noqa: F401 - re-exported for the tables' users
    VOLTAGE_L1, VOLTAGE_L2, VOLTAGE_L3, CURRENT_L1, CURRENT_L2, CURRENT_L3, POWER,
    ENERGY_IMPORT, ENERGY_EXPORT)

# Internal: phase active power, only used for the sign of the phase current.
PHASE_POWER_L1 = 1001
PHASE_POWER_L2 = 1002
PHASE_POWER_L3 = 1003

SLOW_IDS = (VOLTAGE_L1, VOLTAGE_L2, VOLTAGE_L3, ENERGY_IMPORT, ENERGY_EXPORT)
# Current value id -> phase power id giving its sign.
CURRENT_SIGN = ((CURRENT_L1, PHASE_POWER_L1), (CURRENT_L2, PHASE_POWER_L2),
                (CURRENT_L3, PHASE_POWER_L3))

# Encodings (register words as they come off the wire).
F32 = 0    # IEEE 754 float, high word first
S32L = 1   # signed 32 bit, LOW word first (Carlo Gavazzi)
U32 = 2    # unsigned 32 bit, high word first
S32 = 3    # signed 32 bit, high word first
U64 = 4    # unsigned 64 bit, high word first
WIDTH = (2, 2, 2, 2, 4)  # registers per encoding

_EASTRON_3P = (
    (VOLTAGE_L1, 0x00, F32, 1.0), (VOLTAGE_L2, 0x02, F32, 1.0), (VOLTAGE_L3, 0x04, F32, 1.0),
    (CURRENT_L1, 0x06, F32, 1.0), (CURRENT_L2, 0x08, F32, 1.0), (CURRENT_L3, 0x0A, F32, 1.0),
    (PHASE_POWER_L1, 0x0C, F32, 1.0), (PHASE_POWER_L2, 0x0E, F32, 1.0),
    (PHASE_POWER_L3, 0x10, F32, 1.0),
    (POWER, 0x34, F32, 1.0),
    (ENERGY_IMPORT, 0x48, F32, 1.0), (ENERGY_EXPORT, 0x4A, F32, 1.0),
)

_CARLO_GAVAZZI_3P = (
    (VOLTAGE_L1, 0x00, S32L, 0.1), (VOLTAGE_L2, 0x02, S32L, 0.1), (VOLTAGE_L3, 0x04, S32L, 0.1),
    (CURRENT_L1, 0x0C, S32L, 0.001), (CURRENT_L2, 0x0E, S32L, 0.001),
    (CURRENT_L3, 0x10, S32L, 0.001),
    (PHASE_POWER_L1, 0x12, S32L, 0.1), (PHASE_POWER_L2, 0x14, S32L, 0.1),
    (PHASE_POWER_L3, 0x16, S32L, 0.1),
    (POWER, 0x28, S32L, 0.1),
)

MODELS = {
    "sdm630": {
        "name": "Eastron SDM630 v2",
        # Eastron "SDM630 Modbus Protocol" v1.x, input registers 30001.. (0-based here);
        # DOMAIN 5 table.
        "source": "Eastron SDM630 Modbus protocol, input registers 0x00-0x4B",
        "fc": 4, "max_regs": 80, "fields": _EASTRON_3P,
    },
    "sdm72dm2": {
        "name": "Eastron SDM72D-M v2",
        # Eastron "SDM72D-M-2 Modbus protocol": same addresses as the SDM630 for these values;
        # DOMAIN 5 table.
        "source": "Eastron SDM72D-M v2 Modbus protocol, input registers 0x00-0x4B",
        "fc": 4, "max_regs": 80, "fields": _EASTRON_3P,
    },
    "sdm120": {
        "name": "Eastron SDM120",
        # Eastron "SDM120 Modbus protocol": voltage 0x00, current 0x06, active power 0x0C,
        # import 0x48 / export 0x4A kWh. One phase: value ids of L1, total power = phase power.
        "source": "Eastron SDM120 Modbus protocol, input registers 0x00-0x4B",
        "fc": 4, "max_regs": 80, "fields": (
            (VOLTAGE_L1, 0x00, F32, 1.0), (CURRENT_L1, 0x06, F32, 1.0),
            (PHASE_POWER_L1, 0x0C, F32, 1.0), (POWER, 0x0C, F32, 1.0),
            (ENERGY_IMPORT, 0x48, F32, 1.0), (ENERGY_EXPORT, 0x4A, F32, 1.0),
        ),
    },
    "em24": {
        "name": "Carlo Gavazzi EM24",
        # Carlo Gavazzi "EM24 communication protocol" v2.x, input registers, INT32 LSW first;
        # kWh(+) TOT 0x3E, kWh(-) TOT 0x5C (x0.1). Reads of at most 11 registers (DOMAIN 5).
        "source": "Carlo Gavazzi EM24 communication protocol (DOMAIN 5 table)",
        "fc": 4, "max_regs": 11, "fields": _CARLO_GAVAZZI_3P + (
            (ENERGY_IMPORT, 0x3E, S32L, 0.1), (ENERGY_EXPORT, 0x5C, S32L, 0.1),
        ),
    },
    "em340": {
        "name": "Carlo Gavazzi EM340/EM540",
        # Carlo Gavazzi "EM300 series / EM540 communication protocol": same instantaneous
        # variables as the EM24 (0x00-0x17, W sys 0x28); kWh(+) TOT 0x34, kWh(-) TOT 0x4E (x0.1).
        # Cross-checked with Victron dbus-modbus-client's EM340 table (0x28 power, 0x34 energy).
        "source": "Carlo Gavazzi EM340/EM540 communication protocol",
        "fc": 4, "max_regs": 40, "fields": _CARLO_GAVAZZI_3P + (
            (ENERGY_IMPORT, 0x34, S32L, 0.1), (ENERGY_EXPORT, 0x4E, S32L, 0.1),
        ),
    },
    "dtsu666": {
        "name": "Chint DTSU666",
        # Chint "DTSU666 user manual", Modbus section: float32 holding registers; Ua..Uc
        # 0x2006.. x0.1 V, Ia..Ic 0x200C.. x0.001 A, Pt 0x2012, Pa..Pc 0x2014.. x0.1 W,
        # ImpEp 0x101E / ExpEp 0x1028 kWh (DOMAIN 5 table).
        "source": "Chint DTSU666 user manual, Modbus register table",
        "fc": 3, "max_regs": 40, "fields": (
            (VOLTAGE_L1, 0x2006, F32, 0.1), (VOLTAGE_L2, 0x2008, F32, 0.1),
            (VOLTAGE_L3, 0x200A, F32, 0.1),
            (CURRENT_L1, 0x200C, F32, 0.001), (CURRENT_L2, 0x200E, F32, 0.001),
            (CURRENT_L3, 0x2010, F32, 0.001),
            (POWER, 0x2012, F32, 0.1),
            (PHASE_POWER_L1, 0x2014, F32, 0.1), (PHASE_POWER_L2, 0x2016, F32, 0.1),
            (PHASE_POWER_L3, 0x2018, F32, 0.1),
            (ENERGY_IMPORT, 0x101E, F32, 1.0), (ENERGY_EXPORT, 0x1028, F32, 1.0),
        ),
    },
    "abb_b2x": {
        "name": "ABB B23/B24",
        # ABB "B23/B24 User Manual", Modbus mapping tables: voltages 0x5B00.. U32 x0.1 V,
        # currents 0x5B0C.. U32 x0.01 A, total power 0x5B14 and phase powers 0x5B16.. S32
        # x0.01 W, active import 0x5000 / export 0x5004 U64 x0.01 kWh. All ones = invalid.
        "source": "ABB B23/B24 user manual, Modbus register mapping",
        "fc": 3, "max_regs": 60, "fields": (
            (VOLTAGE_L1, 0x5B00, U32, 0.1), (VOLTAGE_L2, 0x5B02, U32, 0.1),
            (VOLTAGE_L3, 0x5B04, U32, 0.1),
            (CURRENT_L1, 0x5B0C, U32, 0.01), (CURRENT_L2, 0x5B0E, U32, 0.01),
            (CURRENT_L3, 0x5B10, U32, 0.01),
            (POWER, 0x5B14, S32, 0.01),
            (PHASE_POWER_L1, 0x5B16, S32, 0.01), (PHASE_POWER_L2, 0x5B18, S32, 0.01),
            (PHASE_POWER_L3, 0x5B1A, S32, 0.01),
            (ENERGY_IMPORT, 0x5000, U64, 0.01), (ENERGY_EXPORT, 0x5004, U64, 0.01),
        ),
    },
}

# "eastron": read the meter code (holding register 0xFC02) and pick the table.
EASTRON_AUTO = "eastron"
EASTRON_CODE_REG = 0xFC02
EASTRON_CODES = {0x70: "sdm630", 0x79: "sdm630", 0x89: "sdm72dm2"}

MODEL_NAMES = tuple(sorted(MODELS)) + (EASTRON_AUTO,)


def value_ids(model):
    """The public value ids a model gives, in the slot's order."""
    out = []
    for f in MODELS[model]["fields"]:
        vid = f[0]
        if vid < PHASE_POWER_L1 and vid not in out:
            out.append(vid)
    out.sort()
    return out
