# Turns a register table (models.py) into a read plan: the fewest requests that cover the wanted
# value ids, and the decoding of the answers into a slot's value list.
import struct

from micropython import const

from firmware.meters import models as m

# Merge two fields into one read when the registers between them cost less wire time than a
# separate request: a request costs ~13 bytes of frames plus the meter's 20-60 ms answer delay,
# i.e. ~16 registers at any baud rate (DOMAIN 5 timing).
_MERGE_GAP_REGS = const(16)


class Read:
    """One request of a plan: registers addr..addr+count-1 (function plan.fc). fields: flat,
    four ints per value: output index, register offset, encoding, scale index (models.SCALES)."""

    def __init__(self, addr, count, slow, fields):
        self.addr = addr
        self.count = count
        self.slow = slow
        self.fields = fields


class Plan:
    """values: the latest reading in output order (the slot's value ids first, then internal
    phase powers); reads: the requests; n_public: how many of values go to the slot; sign:
    (current index, phase power index) pairs."""

    def __init__(self, model, wanted_ids):
        fc, max_regs, fields = m.MODELS[model]
        have = [fields[i] for i in range(0, len(fields), 4)]
        wanted = [vid for vid in wanted_ids if vid in have]
        out_ids = list(wanted)
        self.sign = []
        for cur, pp in m.CURRENT_SIGN:
            if cur in out_ids and pp in have:
                if pp not in out_ids:
                    out_ids.append(pp)
                self.sign.append((out_ids.index(cur), out_ids.index(pp)))
        self.model = model
        self.fc = fc
        self.n_public = len(wanted)
        self.public_ids = wanted
        self.values = [None] * len(out_ids)
        # Fast values (power, currents, phase powers) first: they are read every poll, so only
        # they shape the fast reads. A slow value (voltage, energy) inside a fast read's range
        # rides along for free; the others get their own reads, made every few polls.
        fast = []
        slow = []
        for i in range(0, len(fields), 4):
            vid = fields[i]
            if vid in out_ids:
                entry = (fields[i + 1], out_ids.index(vid), fields[i + 2], fields[i + 3])
                (slow if vid in m.SLOW_IDS else fast).append(entry)
        reads = _group(max_regs, fast, False)
        rest = []
        for entry in slow:
            addr, idx, enc, scale = entry
            for rd in reads:
                if rd.addr <= addr and addr + m.WIDTH[enc] <= rd.addr + rd.count:
                    rd.fields += (idx, addr - rd.addr, enc, scale)
                    break
            else:
                rest.append(entry)
        self.reads = reads + _group(max_regs, rest, True)

    def split(self, rd):
        """Replace a merged read by one read per field (a meter rejected the merged range with
        'illegal data address': some register between the fields does not exist on it)."""
        i = self.reads.index(rd)
        f = rd.fields
        self.reads[i:i + 1] = [Read(rd.addr + f[j + 1], m.WIDTH[f[j + 2]], rd.slow,
                                    [f[j], 0, f[j + 2], f[j + 3]])
                               for j in range(0, len(f), 4)]


def _group(max_regs, entries, slow):
    entries.sort()
    reads = []
    cur = None
    for addr, idx, enc, scale in entries:
        width = m.WIDTH[enc]
        if cur is not None:
            end = cur.addr + cur.count
            if addr - end <= _MERGE_GAP_REGS and addr + width - cur.addr <= max_regs:
                cur.count = max(cur.count, addr + width - cur.addr)
                cur.fields += (idx, addr - cur.addr, enc, scale)
                continue
        cur = Read(addr, width, slow, [idx, 0, enc, scale])
        reads.append(cur)
    return reads


_buf4 = bytearray(4)


def decode_field(regs, off, enc, scale):
    """One value from the registers of an answer, or None for the meter's 'invalid' marker.
    scale: a number, e.g. models.SCALES[i]."""
    hi = regs[off]
    lo = regs[off + 1]
    if enc == m.F32:
        b = _buf4
        b[0] = hi >> 8
        b[1] = hi & 0xFF
        b[2] = lo >> 8
        b[3] = lo & 0xFF
        v = struct.unpack(">f", b)[0]
        if v != v or v in (float("inf"), float("-inf")):
            return None
        return v * scale if scale != 1.0 else v
    if enc == m.S32L:
        u = (lo << 16) | hi
        if u & 0x80000000:
            u -= 0x100000000
        return u * scale
    if enc == m.U32:
        u = (hi << 16) | lo
        if u == 0xFFFFFFFF:
            return None
        return u * scale
    if enc == m.S32:
        u = (hi << 16) | lo
        if u == 0x7FFFFFFF or u == 0xFFFFFFFF:
            # ABB marks invalid readings with all ones / the maximum (DOMAIN 5)
            return None
        if u & 0x80000000:
            u -= 0x100000000
        return u * scale
    # U64
    u = (hi << 48) | (lo << 32) | (regs[off + 2] << 16) | regs[off + 3]
    if u == 0xFFFFFFFFFFFFFFFF:
        return None
    return u * scale
