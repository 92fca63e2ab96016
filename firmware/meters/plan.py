# Turns a register table (models.py) into a read plan: the fewest requests that cover the wanted
# value ids. Needed only when a meter is configured (or an Eastron meter detected):
# rs485_setup.py imports this module (and with it the tables) for that and drops both after, so
# the plan is plain data (lists of ints) that keeps no reference to them.
from micropython import const

from firmware.meters import models as m

# Merge two fields into one read when the registers between them cost less wire time than a
# separate request: a request costs ~13 bytes of frames plus the meter's 20-60 ms answer delay,
# i.e. ~16 registers at any baud rate (DOMAIN 5 timing).
_MERGE_GAP_REGS = const(16)


def plan(model, wanted_ids=None):
    """The read plan of `model` for wanted_ids (None: every value id it has), as
    (ids, fc, reads, n_values, n_public, sign):
      ids       the public value ids read, in the slot's order (the first n_public values);
      fc        3 (holding) or 4 (input registers);
      reads     the requests, fast ones first: [addr, count, slow, then four ints per value:
                output index, register offset, encoding, scale];
      n_values  ids plus the internal phase powers that sign the currents;
      sign      (current index, phase power index) pairs."""
    if wanted_ids is None:
        wanted_ids = m.value_ids(model)
    fc, max_regs, fields = m.MODELS[model]
    have = [fields[i] for i in range(0, len(fields), 4)]
    wanted = [vid for vid in wanted_ids if vid in have]
    out_ids = list(wanted)
    sign = []
    for cur, pp in m.CURRENT_SIGN:
        if cur in out_ids and pp in have:
            if pp not in out_ids:
                out_ids.append(pp)
            sign.append((out_ids.index(cur), out_ids.index(pp)))
    # Fast values (power, currents, phase powers) first: they are read every poll, so only they
    # shape the fast reads. A slow value (voltage, energy) inside a fast read's range rides
    # along for free; the others get their own reads, made every few polls.
    fast = []
    slow = []
    for i in range(0, len(fields), 4):
        vid = fields[i]
        if vid in out_ids:
            entry = (fields[i + 1], out_ids.index(vid), fields[i + 2], m.SCALES[fields[i + 3]])
            (slow if vid in m.SLOW_IDS else fast).append(entry)
    reads = _group(max_regs, fast, False)
    rest = []
    for entry in slow:
        addr, idx, enc, scale = entry
        for rd in reads:
            if rd[0] <= addr and addr + m.WIDTH[enc] <= rd[0] + rd[1]:
                rd += (idx, addr - rd[0], enc, scale)
                break
        else:
            rest.append(entry)
    return wanted, fc, reads + _group(max_regs, rest, True), len(out_ids), len(wanted), sign


def _group(max_regs, entries, slow):
    entries.sort()
    reads = []
    cur = None
    for addr, idx, enc, scale in entries:
        width = m.WIDTH[enc]
        if cur is not None:
            if addr - (cur[0] + cur[1]) <= _MERGE_GAP_REGS and addr + width - cur[0] <= max_regs:
                cur[1] = max(cur[1], addr + width - cur[0])
                cur += (idx, addr - cur[0], enc, scale)
                continue
        cur = [addr, width, slow, idx, 0, enc, scale]
        reads.append(cur)
    return reads
