"""Reads a PV day file for the benchmark on the host (CPython), leniently, before any run.

The format (../shared/bench/README.md): '#' comment lines, a header naming t_s and pv_w (and
base_grid_w where the dataset has grid data), one sample a row, each held until the next.
Files from other days and tools differ in small ways; what a careful user expects of each is in
docs/benchmark.md ("Profiles the harness accepts"). In short:

- read as they are: UTF-8 with or without a byte-order mark (other bytes: Latin-1; only numbers
  matter), UTF-16 with a byte-order mark, LF / CRLF / CR line ends, no final line end, blank
  lines, spaces and double quotes around cells, header names in any case, extra columns, a
  trailing empty cell, decimals and exponents (W rounded, t_s down to whole seconds), t_s from
  any start (counted from the first sample), any spacing and gaps;
- repaired, and said so in one note line per file: rows whose t_s or pv_w is empty or no finite
  number (nan, n/a, inf, a repeated header), out of range (|W| > 1 MW) or cut short, or with more
  non-empty cells than the header names (a decimal comma?) are skipped - the sample before holds
  over them; rows out of time order are sorted; a t_s given twice keeps its first row (so do
  samples closer than a second: t_s is whole seconds); where
  base_grid_w is missing on some rows of a file that has it, the house load (base_grid_w + pv_w)
  of the nearest row that has it holds (not the house model: that is another house);
- rejected with one line naming the file and why: no header naming t_s and pv_w (e.g. ';'
  separated), no usable row, t_s going back or repeating on more than a tenth of the rows (two
  series one after the other, t_s restarting), more than 31 days.

pv_w below 0 (an inverter's standby draw at night) reads as 0, as in tools/simsite/profile.py.
The result is written as a plain file (write_plain) that tools/simsite/profile.py, which runs on
MicroPython, reads as it is.
"""
import codecs
import csv
import math
from collections import namedtuple

MAX_ABS_W = 1000000          # 1 MW: no house connection; a larger cell is a unit or typing error
MAX_ABS_T_S = 10 ** 11       # far beyond Unix time stamps, which are fine (counted from the first)
MAX_DAYS = 31                # a month of 250-ms steps is ~4 min a run; longer is a mistake
MAX_DISORDER = 0.10          # rows going back or repeating, of all usable rows
NEGATIVE_PV_NOTE_W = -100    # below this a negative pv_w is more than a standby draw: say so
GRACE_MS = 3600000           # a profile of one day and one sample more is one day

Clean = namedtuple("Clean", "t_s pv_w base_w notes")   # base_w: None where no grid data


class Rejected(ValueError):
    """The file cannot give a row; str() is the reason (without the file name)."""


def _decode(raw):
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # A comment in a local code page (e.g. 'S\xfcd'): numbers read the same in Latin-1.
        return raw.decode("latin-1")


def _rows(n):
    return "%d row%s" % (n, "" if n == 1 else "s")


def _number(cell):
    """A finite float from a cell, else None."""
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _cells(line):
    return [c.strip().strip('"').strip() for c in next(csv.reader([line], skipinitialspace=True))]


class _Skips:
    """Counts skipped rows by reason, remembering the first line of each."""

    def __init__(self):
        self.by_reason = {}

    def add(self, reason, lineno, detail):
        n, first = self.by_reason.get(reason, (0, None))
        self.by_reason[reason] = (n + 1, first or "line %d%s" % (lineno, detail))

    def total(self):
        return sum(n for n, _ in self.by_reason.values())

    def text(self):
        return ", ".join("%d %s (first: %s)" % (n, reason, first)
                         for reason, (n, first) in self.by_reason.items())


def read(path):
    """A profile file as a Clean, or Rejected with the reason."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Rejected("cannot read it: %s" % (e.strerror or e))
    return parse(_decode(raw).splitlines())


def parse(lines):
    col_t = col_pv = col_base = -1
    n_cols = 0
    skips = _Skips()
    rows = []            # (t_s, lineno, pv_w, base_w or None, t_s as written)
    base_bad = [0, None]
    negative_pv = 0
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text[0] == "#":
            continue
        cells = _cells(text)
        if col_t < 0:
            names = [c.lower() for c in cells]
            if "t_s" not in names or "pv_w" not in names:
                raise Rejected("line %d: the header must name t_s and pv_w, comma-separated "
                               "(t_s,pv_w,base_grid_w), got %r" % (lineno, text[:80]))
            for name in ("t_s", "pv_w", "base_grid_w"):
                if names.count(name) > 1:
                    raise Rejected("line %d: the header names %s twice" % (lineno, name))
            col_t, col_pv = names.index("t_s"), names.index("pv_w")
            col_base = names.index("base_grid_w") if "base_grid_w" in names else -1
            n_cols = len(names)
            continue
        if not any(cells):
            continue        # ",,," : a spreadsheet's empty row, as a blank line
        if any(cells[n_cols:]):
            skips.add("with more cells than the header names (a decimal comma?)", lineno,
                      ": %r" % text[:40])
            continue
        if len(cells) <= max(col_t, col_pv):
            skips.add("cut short", lineno, ": %r" % text[:40])
            continue
        t = _number(cells[col_t])
        if t is None or abs(t) > MAX_ABS_T_S:
            skips.add("whose t_s is no number", lineno, ": %r" % cells[col_t][:20])
            continue
        pv = _number(cells[col_pv])
        if pv is None or abs(pv) > MAX_ABS_W:
            skips.add("whose pv_w is empty, no number or beyond 1 MW", lineno,
                      ": %r" % cells[col_pv][:20])
            continue
        pv = int(round(pv))
        if pv < 0:
            if pv < NEGATIVE_PV_NOTE_W:
                negative_pv += 1
            pv = 0          # an inverter's standby draw at night is no production
        base = None
        if 0 <= col_base < len(cells) and cells[col_base]:
            b = _number(cells[col_base])
            if b is None or abs(b) > MAX_ABS_W:
                base_bad[0] += 1
                base_bad[1] = base_bad[1] or "line %d: %r" % (lineno, cells[col_base][:20])
            else:
                base = int(round(b))
        rows.append((math.floor(t), lineno, pv, base, t))   # a sample holds from its second on
    if col_t < 0:
        raise Rejected("no header line naming t_s and pv_w (only comments or nothing)")
    if not rows:
        raise Rejected("no usable sample" + (": skipped %s" % skips.text() if skips.total() else
                                             " below the header"))
    notes = []
    if skips.total():
        notes.append("skipped %d of %s: %s; the sample before holds over them" % (
            skips.total(), _rows(skips.total() + len(rows)), skips.text()))
    rows, order_notes = _in_time_order(rows)
    notes += order_notes
    base_w, base_note = _fill_base(rows, base_bad)
    if base_note:
        notes.append(base_note)
    if negative_pv:
        notes.append("pv_w below %d W on %s read as 0" % (NEGATIVE_PV_NOTE_W, _rows(negative_pv)))
    t0 = rows[0][0]
    t_s = [r[0] - t0 for r in rows]
    days = span_days(t_s)
    if days > MAX_DAYS:
        raise Rejected("spans %d days (t_s %d to %d s); at most %d" % (
            days, t0, rows[-1][0], MAX_DAYS))
    return Clean(t_s, [r[2] for r in rows], base_w, notes)


def _in_time_order(rows):
    """Rows sorted by t_s, the first of each t_s kept; too much disorder is no time series.
    Samples closer than a second (t_s 0.5, 1.0, ...) fall on one whole second: the first is
    kept, and that is no disorder."""
    back = repeat = same_second = 0
    first_back = first_repeat = first_same = None
    seen, seen_raw = set(), set()
    latest = None
    for t, lineno, _, _, raw in rows:
        if raw in seen_raw:
            repeat += 1
            first_repeat = first_repeat or "line %d, t_s %s" % (lineno, _fmt(raw))
        elif latest is not None and raw < latest:
            back += 1
            first_back = first_back or "line %d, t_s %s after %s" % (lineno, _fmt(raw), _fmt(latest))
        elif t in seen:
            same_second += 1
            first_same = first_same or "line %d, t_s %s" % (lineno, _fmt(raw))
        seen.add(t)
        seen_raw.add(raw)
        latest = raw if latest is None or raw > latest else latest
    if back + repeat > MAX_DISORDER * len(rows):
        raise Rejected("t_s goes back on %d and repeats on %d of %d rows (first: %s): not one "
                       "time series; join days with increasing t_s" % (
                           back, repeat, len(rows), first_back or first_repeat))
    notes = []
    if back:
        rows = sorted(rows, key=lambda r: r[4])      # stable: the file's first row of a t_s first
        notes.append("sorted %s out of time order (first: %s)" % (_rows(back), first_back))
    if repeat or same_second:
        kept, last = [], None
        for r in rows:
            if r[0] != last:
                kept.append(r)
            last = r[0]
        rows = kept
    if repeat:
        notes.append("dropped %s repeating a t_s, the first row of each kept (first: %s)" % (
            _rows(repeat), first_repeat))
    if same_second:
        notes.append("dropped %s within the same whole second as the row before, the first of "
                     "each second kept (first: %s)" % (_rows(same_second), first_same))
    return rows, notes


def _fmt(t):
    return "%d" % t if t == int(t) else "%g" % t


def _fill_base(rows, base_bad):
    """base_grid_w per row; where a file has it on some rows only, the house load of the nearest
    row with it (the one before, else the first one) holds on the others."""
    base = [r[3] for r in rows]
    have = [i for i, b in enumerate(base) if b is not None]
    if not have:
        note = None
        if base_bad[0]:
            note = "base_grid_w is no number on all %d rows that have it (first: %s): the house " \
                   "model stands in" % (base_bad[0], base_bad[1])
        return base, note
    missing = len(base) - len(have)
    if not missing:
        return base, None
    house_w = base[have[0]] + rows[have[0]][2]
    for i, r in enumerate(rows):
        if base[i] is None:
            base[i] = house_w - r[2]
        else:
            house_w = base[i] + r[2]
    note = "base_grid_w missing on %d of %s%s: the house load (base_grid_w + pv_w) of the " \
           "nearest row before with it holds there (before the first: the first's)" % (
               missing, _rows(len(rows)), " (%d no number, first: %s)" % tuple(base_bad)
               if base_bad[0] else "")
    return base, note


def duration_ms(t_s):
    # The last sample holds as long as the gap before it (a 1-minute dataset ends 1 min later),
    # as in tools/simsite/profile.py.
    last_gap_s = t_s[-1] - t_s[-2] if len(t_s) > 1 else 60
    return (t_s[-1] - t_s[0] + last_gap_s) * 1000


def span_days(t_s):
    """Days a profile spans, counted up after an hour's grace (midnight to midnight plus one
    sample is one day; three daylight windows a day apart are three)."""
    return max(1, -(-(duration_ms(t_s) - GRACE_MS) // 86400000))


def write_plain(clean, path):
    """The profile as the plain format tools/simsite/profile.py reads (LF, integers, t_s from 0)."""
    with open(path, "w", newline="\n") as f:
        f.write("t_s,pv_w,base_grid_w\n")
        for t, pv, b in zip(clean.t_s, clean.pv_w, clean.base_w):
            f.write("%d,%d,%s\n" % (t, pv, "" if b is None else b))
