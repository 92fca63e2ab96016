# Turns a register table (models.py) into a read plan: the fewest requests that cover the wanted
# value ids, and the decoding of the answers into a slot's value list.
import struct

from firmware.meters import models as m

# Merge two fields into one read when the registers between them cost less wire time than a
# separate request: a request costs ~13 bytes of frames plus the meter's 20-60 ms answer delay,
# i.e. ~16 registers at any baud rate (DOMAIN 5 timing).
MERGE_GAP_REGS = 16


class Read:
    """One request of a plan: registers addr..addr+count-1 with the fields decoded from it."""

    def __init__(self, fc, addr, slow):
        self.fc = fc
        self.addr = addr
        self.count = 0
        self.slow = slow
        self.fields = []  # (output index, register offset, encoding, scale)

    def __repr__(self):
        return "Read(fc=%d, addr=0x%X, count=%d%s)" % (
            self.fc, self.addr, self.count, ", slow" if self.slow else "")


class Plan:
    """out_ids: value ids in output order (the slot's ids first, then internal phase powers);
    reads: the requests; n_public: how many of out_ids go to the slot."""

    def __init__(self, model, wanted_ids):
        table = m.MODELS[model]
        fields = table["fields"]
        wanted = [vid for vid in wanted_ids if any(f[0] == vid for f in fields)]
        out_ids = list(wanted)
        self.sign = []  # (current index, phase power index)
        for cur, pp in m.CURRENT_SIGN:
            if cur in out_ids and any(f[0] == pp for f in fields):
                if pp not in out_ids:
                    out_ids.append(pp)
                self.sign.append((out_ids.index(cur), out_ids.index(pp)))
        self.model = model
        self.out_ids = out_ids
        self.n_public = len(wanted)
        self.public_ids = wanted
        self.values = [None] * len(out_ids)
        self.reads = _plan_reads(table, fields, out_ids)

    def split(self, rd):
        """Replace a merged read by one read per field (a meter rejected the merged range with
        'illegal data address': some register between the fields does not exist on it)."""
        i = self.reads.index(rd)
        singles = []
        for idx, off, enc, scale in rd.fields:
            one = Read(rd.fc, rd.addr + off, rd.slow)
            one.count = m.WIDTH[enc]
            one.fields.append((idx, 0, enc, scale))
            singles.append(one)
        self.reads[i:i + 1] = singles

    def drop(self, rd):
        """Stop reading a value the meter does not have (it stays None)."""
        self.reads.remove(rd)
        for idx, _, _, _ in rd.fields:
            self.values[idx] = None

    def fast_count(self):
        return sum(1 for r in self.reads if not r.slow)


def _plan_reads(table, fields, out_ids):
    # Fast values (power, currents, phase powers) first: they are read every poll, so only they
    # shape the fast reads. A slow value (voltage, energy) inside a fast read's range rides
    # along for free; the others get their own reads, made every few polls.
    fc = table["fc"]
    max_regs = table["max_regs"]
    fast = []
    slow = []
    for f in fields:
        if f[0] in out_ids:
            entry = (f[1], out_ids.index(f[0]), f[2], f[3])
            (slow if f[0] in m.SLOW_IDS else fast).append(entry)
    reads = _group(fc, max_regs, fast, False)
    rest = []
    for entry in slow:
        addr, idx, enc, scale = entry
        for rd in reads:
            if rd.addr <= addr and addr + m.WIDTH[enc] <= rd.addr + rd.count:
                rd.fields.append((idx, addr - rd.addr, enc, scale))
                break
        else:
            rest.append(entry)
    return reads + _group(fc, max_regs, rest, True)


def _group(fc, max_regs, entries, slow):
    entries.sort()
    reads = []
    cur = None
    for addr, idx, enc, scale in entries:
        width = m.WIDTH[enc]
        if cur is not None:
            end = cur.addr + cur.count
            if addr - end <= MERGE_GAP_REGS and addr + width - cur.addr <= max_regs:
                cur.count = max(cur.count, addr + width - cur.addr)
                cur.fields.append((idx, addr - cur.addr, enc, scale))
                continue
        cur = Read(fc, addr, slow)
        cur.count = width
        cur.fields.append((idx, 0, enc, scale))
        reads.append(cur)
    return reads


_buf4 = bytearray(4)


def decode_field(regs, off, enc, scale):
    """One value from the registers of an answer, or None for the meter's 'invalid' marker."""
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


def decode_read(plan, read, regs):
    vals = plan.values
    for idx, off, enc, scale in read.fields:
        vals[idx] = decode_field(regs, off, enc, scale)


def apply_signs(plan):
    """Currents as signed values: magnitude from the current register, sign from the phase
    power (negative = export), since most meters give magnitudes only."""
    vals = plan.values
    for ci, pi in plan.sign:
        c = vals[ci]
        p = vals[pi]
        if c is None or p is None:
            continue
        c = abs(c)
        vals[ci] = -c if p < 0 else c
