# PV day profiles: the CSV format of ../shared/bench/profiles, or a built-in default day.
#
#   # comment lines start with '#'
#   t_s,pv_w,base_grid_w
#   0,219,-27
#   60,198,          <- base_grid_w may be empty (no grid data in this dataset)
#
# Files saved by a spreadsheet are read too: a UTF-8 byte-order mark, CRLF line ends and cells in
# double quotes ("t_s","pv_w") are accepted.
#
# Each sample holds until the next one (the datasets are ~60 s apart with some gaps). Samples are
# kept in integer arrays (not lists of tuples) so a long day stays small in the MicroPython heap.
import math
from array import array

_NONE = -(1 << 30)  # marks an empty base_grid_w cell inside the int array


class ProfileError(ValueError):
    pass


def _int_cell(text, what, lineno):
    try:
        return int(text) if "." not in text and "e" not in text.lower() else int(round(float(text)))
    except ValueError:
        raise ProfileError("line %d: %s is not a number: %r" % (lineno, what, text))


class Profile:
    """pv_w_at(t_ms) / base_grid_w_at(t_ms) over a day; `t_ms` counts from the first sample.

    Look-ups are O(1) for (nearly) monotonic time thanks to a cursor; any order works."""

    def __init__(self, t_s, pv_w, base_w, name="profile", loop=False):
        if not len(t_s):
            raise ProfileError("%s: no samples" % name)
        self.name = name
        # ms as int32-compatible values: a day is 86.4e6 ms, well inside 2**31.
        self._t_ms = array("l", [t * 1000 for t in t_s])
        self._pv_w = pv_w
        self._base_w = base_w
        self.has_base_grid = False
        for b in base_w:
            if b != _NONE:
                self.has_base_grid = True
                break
        n = len(t_s)
        # The last sample holds as long as the gap before it (a 1-minute dataset ends 1 min later).
        last_gap_s = t_s[n - 1] - t_s[n - 2] if n > 1 else 60
        self.duration_ms = (t_s[n - 1] - t_s[0] + last_gap_s) * 1000
        self.loop = loop
        self._i = 0

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def load(cls, path, loop=False):
        with open(path) as f:
            return cls.parse(f, name=_basename(path), loop=loop)

    @classmethod
    def parse(cls, lines, name="profile", loop=False):
        """Parse an iterable of text lines (a file object works)."""
        t_s = array("l")
        pv_w = array("l")
        base_w = array("l")
        col_t = col_pv = col_base = -1
        lineno = 0
        for line in lines:
            lineno += 1
            if lineno == 1 and line and line[0] == "\ufeff":
                line = line[1:]  # UTF-8 byte-order mark (a spreadsheet's "CSV UTF-8")
            line = line.strip()
            if not line or line[0] == "#":
                continue
            cells = [c.strip().strip('"').strip() for c in line.split(",")]
            if col_t < 0:
                # The first non-comment line is the header; columns are found by name.
                if "t_s" not in cells or "pv_w" not in cells:
                    raise ProfileError("%s line %d: header must name t_s and pv_w, got %r" % (name, lineno, line))
                col_t = cells.index("t_s")
                col_pv = cells.index("pv_w")
                col_base = cells.index("base_grid_w") if "base_grid_w" in cells else -1
                continue
            if len(cells) <= max(col_t, col_pv):
                raise ProfileError("%s line %d: too few columns: %r" % (name, lineno, line))
            t = _int_cell(cells[col_t], "t_s", lineno)
            if len(t_s) and t <= t_s[len(t_s) - 1]:
                raise ProfileError("%s line %d: t_s %d does not increase" % (name, lineno, t))
            pv = _int_cell(cells[col_pv], "pv_w", lineno) if cells[col_pv] else 0
            # Inverters report a few negative watts at night (standby draw): that is no production.
            pv_w.append(pv if pv > 0 else 0)
            if 0 <= col_base < len(cells) and cells[col_base]:
                base_w.append(_int_cell(cells[col_base], "base_grid_w", lineno))
            else:
                base_w.append(_NONE)
            t_s.append(t)
        if col_t < 0:
            raise ProfileError("%s: no header line (t_s,pv_w,base_grid_w)" % name)
        t0 = t_s[0] if len(t_s) else 0
        for i in range(len(t_s)):
            t_s[i] -= t0
        return cls(t_s, pv_w, base_w, name=name, loop=loop)

    @classmethod
    def default_day(cls, peak_w=10000, loop=True):
        """A ~10 kWp day, one sample a minute from midnight: clear-sky bell from 06:00 to 20:00
        with a few clouds (a passing front, a flickering hour and two single clouds), so the
        simulator shows both steady surplus and the on/off cases."""
        t_s = array("l")
        pv_w = array("l")
        base_w = array("l")
        rise_min, set_min = 6 * 60, 20 * 60
        # (start minute, end minute, percent of clear sky); flicker: alternate every 3 min.
        clouds = ((10 * 60 + 20, 10 * 60 + 35, 30), (12 * 60 + 5, 12 * 60 + 12, 45),
                  (15 * 60 + 40, 16 * 60 + 10, 55))
        flicker = (13 * 60 + 30, 14 * 60 + 30, 35)
        for m in range(24 * 60):
            w = 0
            if rise_min < m < set_min:
                x = math.sin(math.pi * (m - rise_min) / (set_min - rise_min))
                w = int(peak_w * 0.82 * x ** 1.3)  # ~82 % of kWp at noon on a clear day
                for c0, c1, pct in clouds:
                    if c0 <= m < c1:
                        w = w * pct // 100
                if flicker[0] <= m < flicker[1] and ((m - flicker[0]) // 3) % 2:
                    w = w * flicker[2] // 100
            t_s.append(m * 60)
            pv_w.append(w)
            base_w.append(_NONE)
        return cls(t_s, pv_w, base_w, name="default_day", loop=loop)

    def scale_pv(self, pct):
        """A bigger (pct > 100) or smaller array under the same sky: PV times pct/100. A measured
        base_grid_w (house - PV) keeps its house load, so it drops by the added PV."""
        pv = self._pv_w
        base = self._base_w
        for i in range(len(pv)):
            w = pv[i] * pct // 100
            if base[i] != _NONE:
                base[i] -= w - pv[i]
            pv[i] = w

    # -- look-up -----------------------------------------------------------------------------
    def _index(self, t_ms):
        if self.loop:
            t_ms %= self.duration_ms
        ts = self._t_ms
        n = len(ts)
        i = self._i
        if t_ms < ts[i]:
            if i and t_ms >= ts[i - 1]:
                i -= 1
            else:
                # Jumped backwards: binary search for the last sample <= t_ms.
                lo, hi = 0, i
                while lo < hi:
                    mid = (lo + hi + 1) >> 1
                    if ts[mid] <= t_ms:
                        lo = mid
                    else:
                        hi = mid - 1
                i = lo
        else:
            while i + 1 < n and ts[i + 1] <= t_ms:
                i += 1
        self._i = i
        return i

    def pv_w_at(self, t_ms):
        return self._pv_w[self._index(t_ms)]

    def base_grid_w_at(self, t_ms):
        b = self._base_w[self._index(t_ms)]
        return None if b == _NONE else b

    def __len__(self):
        return len(self._t_ms)


def _basename(path):
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".csv") else name
