# Meter models as register tables: data, no code per model. plan.py turns a table into the
# fewest Modbus requests for the value ids wanted. Imported (with plan.py) only while a meter
# slot's read plan is made (rs485_setup.py), and dropped after. ("eastron", detection by meter
# code: rs485_setup.py.)
#
# A table: (fc: 3 holding / 4 input, max_regs: longest read the meter accepts, fields). fields is
# one flat tuple of ints, four per value: value id, 0-based address, encoding, scale (an index
# into SCALES). Flat ints, not a tuple per field with a float scale: 8 bytes of heap per number
# instead of ~80 per field. Value ids follow DOMAIN 5; PHASE_POWER_L1..3 are internal (the sign
# of the current). Energies and voltages are "slow" values (read every few polls); power,
# currents and phase powers are read every poll.
from micropython import const

# Value ids (DOMAIN 5), defined once with the slots that hold them.
from firmware.meters.slots import (  # noqa: F401 - re-exported for the tables' users
    VOLTAGE_L1, VOLTAGE_L2, VOLTAGE_L3, CURRENT_L1, CURRENT_L2, CURRENT_L3, POWER,
    ENERGY_IMPORT, ENERGY_EXPORT)

# Internal: phase active power, only used for the sign of the phase current.
PHASE_POWER_L1 = const(1001)
PHASE_POWER_L2 = const(1002)
PHASE_POWER_L3 = const(1003)

SLOW_IDS = (VOLTAGE_L1, VOLTAGE_L2, VOLTAGE_L3, ENERGY_IMPORT, ENERGY_EXPORT)
# Current value id -> phase power id giving its sign.
CURRENT_SIGN = ((CURRENT_L1, PHASE_POWER_L1), (CURRENT_L2, PHASE_POWER_L2),
                (CURRENT_L3, PHASE_POWER_L3))

# Encodings (register words as they come off the wire).
F32 = const(0)    # IEEE 754 float, high word first
S32L = const(1)   # signed 32 bit, LOW word first (Carlo Gavazzi)
U32 = const(2)    # unsigned 32 bit, high word first
S32 = const(3)    # signed 32 bit, high word first
U64 = const(4)    # unsigned 64 bit, high word first
WIDTH = (2, 2, 2, 2, 4)  # registers per encoding

# Scales (value = raw * scale), by index.
SCALES = (1.0, 0.1, 0.01, 0.001)
_X1 = const(0)
_X0_1 = const(1)
_X0_01 = const(2)
_X0_001 = const(3)

# Rows: value id, address, encoding, scale.
_EASTRON_3P = (
    VOLTAGE_L1, 0x00, F32, _X1,
    VOLTAGE_L2, 0x02, F32, _X1,
    VOLTAGE_L3, 0x04, F32, _X1,
    CURRENT_L1, 0x06, F32, _X1,
    CURRENT_L2, 0x08, F32, _X1,
    CURRENT_L3, 0x0A, F32, _X1,
    PHASE_POWER_L1, 0x0C, F32, _X1,
    PHASE_POWER_L2, 0x0E, F32, _X1,
    PHASE_POWER_L3, 0x10, F32, _X1,
    POWER, 0x34, F32, _X1,
    ENERGY_IMPORT, 0x48, F32, _X1,
    ENERGY_EXPORT, 0x4A, F32, _X1,
)

_CARLO_GAVAZZI_3P = (
    VOLTAGE_L1, 0x00, S32L, _X0_1,
    VOLTAGE_L2, 0x02, S32L, _X0_1,
    VOLTAGE_L3, 0x04, S32L, _X0_1,
    CURRENT_L1, 0x0C, S32L, _X0_001,
    CURRENT_L2, 0x0E, S32L, _X0_001,
    CURRENT_L3, 0x10, S32L, _X0_001,
    PHASE_POWER_L1, 0x12, S32L, _X0_1,
    PHASE_POWER_L2, 0x14, S32L, _X0_1,
    PHASE_POWER_L3, 0x16, S32L, _X0_1,
    POWER, 0x28, S32L, _X0_1,
)

# model: (fc, max_regs, fields)
MODELS = {
    # Eastron SDM630 v2: "SDM630 Modbus Protocol" v1.x, input registers 30001.. (0-based
    # here, 0x00-0x4B); DOMAIN 5 table.
    "sdm630": (4, 80, _EASTRON_3P),
    # Eastron SDM72D-M v2: "SDM72D-M-2 Modbus protocol": same addresses as the SDM630 for these
    # values; DOMAIN 5 table. At most 30 parameters (60 registers) a request, not the SDM630's
    # 40 (Eastron SDM72 manuals, PART 3; docs/meters-audit.md).
    "sdm72dm2": (4, 60, _EASTRON_3P),
    # Eastron SDM120: "SDM120 Modbus protocol", input registers 0x00-0x4B: voltage 0x00,
    # current 0x06, active power 0x0C, import 0x48 / export 0x4A kWh. One phase: value ids of
    # L1, total power = phase power.
    "sdm120": (4, 80, (
        VOLTAGE_L1, 0x00, F32, _X1,
        CURRENT_L1, 0x06, F32, _X1,
        PHASE_POWER_L1, 0x0C, F32, _X1,
        POWER, 0x0C, F32, _X1,
        ENERGY_IMPORT, 0x48, F32, _X1,
        ENERGY_EXPORT, 0x4A, F32, _X1,
    )),
    # Carlo Gavazzi EM24: "EM24-DIN communication protocol", input registers, INT32 LSW first;
    # kWh(+) TOT 0x3E, kWh(-) TOT 0x5C (x0.1; Victron dbus-cgwacs). Reads of at most 11 registers
    # (protocol 1.2.2). Application H required (rs485_setup checks 0x1101; docs/meters-audit.md).
    "em24": (4, 11, _CARLO_GAVAZZI_3P + (
        ENERGY_IMPORT, 0x3E, S32L, _X0_1,
        ENERGY_EXPORT, 0x5C, S32L, _X0_1,
    )),
    # Carlo Gavazzi EM340/EM540: "EM300 series / EM540 communication protocol": same
    # instantaneous variables as the EM24 (0x00-0x17, W sys 0x28); kWh(+) TOT 0x34, kWh(-) TOT
    # 0x4E (x0.1). Cross-checked with Victron dbus-cgwacs' EM340/EM540 commands (0x28 power,
    # 0x34 / 0x4E energy). Measurement mode b or C required (rs485_setup checks 0x1103).
    "em340": (4, 40, _CARLO_GAVAZZI_3P + (
        ENERGY_IMPORT, 0x34, S32L, _X0_1,
        ENERGY_EXPORT, 0x4E, S32L, _X0_1,
    )),
    # Chint DTSU666: "DTSU666 user manual", Modbus register table: float32 holding registers;
    # Ua..Uc 0x2006.. x0.1 V, Ia..Ic 0x200C.. x0.001 A, Pt 0x2012, Pa..Pc 0x2014.. x0.1 W,
    # ImpEp 0x101E / ExpEp 0x1028 kWh (DOMAIN 5 table).
    "dtsu666": (3, 40, (
        VOLTAGE_L1, 0x2006, F32, _X0_1,
        VOLTAGE_L2, 0x2008, F32, _X0_1,
        VOLTAGE_L3, 0x200A, F32, _X0_1,
        CURRENT_L1, 0x200C, F32, _X0_001,
        CURRENT_L2, 0x200E, F32, _X0_001,
        CURRENT_L3, 0x2010, F32, _X0_001,
        POWER, 0x2012, F32, _X0_1,
        PHASE_POWER_L1, 0x2014, F32, _X0_1,
        PHASE_POWER_L2, 0x2016, F32, _X0_1,
        PHASE_POWER_L3, 0x2018, F32, _X0_1,
        ENERGY_IMPORT, 0x101E, F32, _X1,
        ENERGY_EXPORT, 0x1028, F32, _X1,
    )),
    # ABB B23/B24: "B23/B24 User Manual", Modbus register mapping: voltages 0x5B00.. U32
    # x0.1 V, currents 0x5B0C.. U32 x0.01 A, total power 0x5B14 and phase powers 0x5B16.. S32
    # x0.01 W, active import 0x5000 / export 0x5004 U64 x0.01 kWh. All ones = invalid.
    "abb_b2x": (3, 60, (
        VOLTAGE_L1, 0x5B00, U32, _X0_1,
        VOLTAGE_L2, 0x5B02, U32, _X0_1,
        VOLTAGE_L3, 0x5B04, U32, _X0_1,
        CURRENT_L1, 0x5B0C, U32, _X0_01,
        CURRENT_L2, 0x5B0E, U32, _X0_01,
        CURRENT_L3, 0x5B10, U32, _X0_01,
        POWER, 0x5B14, S32, _X0_01,
        PHASE_POWER_L1, 0x5B16, S32, _X0_01,
        PHASE_POWER_L2, 0x5B18, S32, _X0_01,
        PHASE_POWER_L3, 0x5B1A, S32, _X0_01,
        ENERGY_IMPORT, 0x5000, U64, _X0_01,
        ENERGY_EXPORT, 0x5004, U64, _X0_01,
    )),
}
del _CARLO_GAVAZZI_3P  # only a part of the EM24/EM340 tables: not kept twice

def value_ids(model):
    """The public value ids a model gives, in the slot's order."""
    out = []
    fields = MODELS[model][2]
    for i in range(0, len(fields), 4):
        vid = fields[i]
        if vid < PHASE_POWER_L1 and vid not in out:
            out.append(vid)
    out.sort()
    return out
