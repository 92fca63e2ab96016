# Chargers with the reference vendor's HTTP API (WARP charger firmware, API reference:
# https://docs.warp-charger.com/docs/mqtt_http/api_reference/evse ; fields of evse/state:
# iec61851_state 0 A / 1 B / 2 C / 3 D / 4 E-F, charger_state 0 not connected / 1 waiting for
# release / 2 ready / 3 charging / 4 error, allowed_charging_current mA).
#
# Set-point: PUT evse/external_current_update {"current": mA} (0 = blocked, else 6000..32000);
# the external slot is enabled once with evse/external_enabled_update. CP disconnect (WARP3 and
# WARP2 with the feature "cp_disconnect"): PUT evse/control_pilot_disconnect_update
# {"disconnect": bool}. The vendor documents evse/external_current etc. as states written
# through <state>_update; firmware 2.x also routes a PUT to the state path, firmware 1.x answers
# it 200 with the state and writes nothing (docs/chargers-audit.md). Phase
# currents from meters/0/values at the positions of value ids 14/18/22 (signed, ImExDiff: an API
# meter, DOMAIN 5) or else 13/17/21 (ImExSum: the charger's own SDM meter declares these), when
# the charger has a meter; without one they are estimated from the allowed current.
#
# Non-blocking asyncio client: one short HTTP/1.0 request at a time, every step under a timeout,
# Connection: close. A charger that does not answer for 32 s becomes unreachable (base.Charger).
import asyncio
import json
import time

from micropython import const

from firmware.chargers.base import Charger

_POLL_MS = const(1000)
_TIMEOUT_MS = const(2000)
_REFRESH_MS = const(10000)   # re-send the set-point this often even if unchanged
_MAX_RESPONSE = const(4096)
_CURRENT_IDS = (14, 18, 22)  # signed L1..L3 current (ImExDiff) in the vendor's value id list
_CURRENT_IDS_SUM = (13, 17, 21)  # unsigned L1..L3 current (ImExSum): the charger's own meter


class HttpError(Exception):
    pass


class HttpNotFound(HttpError):
    """The charger answered 404: it has no such endpoint."""


async def _exchange(host, port, method, path, body):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = "%s /%s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n" % (method, path, host)
        if body is not None:
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        writer.write((head + "\r\n").encode())
        if body is not None:
            writer.write(body)
        await writer.drain()
        data = b""
        while len(data) <= _MAX_RESPONSE:
            chunk = await reader.read(512)
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:  # noqa: BLE001 - the peer may already be gone
            pass
    if len(data) > _MAX_RESPONSE:
        raise HttpError("response too large")
    sep = data.find(b"\r\n\r\n")
    if sep < 0 or not data.startswith(b"HTTP/"):
        raise HttpError("malformed response")
    parts = data[:data.find(b"\r\n")].split()
    if len(parts) < 2:
        raise HttpError("malformed status line")
    return int(parts[1]), data[sep + 4:]


class HttpEvseCharger(Charger):
    kind = "warp_http"

    def __init__(self, name, host, max_ma=32000, cp_disconnect=True, poll_ms=_POLL_MS,
                 timeout_ms=_TIMEOUT_MS):
        super().__init__(name, max_ma)
        self.host, self.port = host, 80           # "host" or "host:port"
        if ":" in host:
            h, p = host.rsplit(":", 1)
            self.host, self.port = h, int(p)
        self.supports_cp_disconnect = cp_disconnect
        self.poll_ms = poll_ms
        self.timeout_ms = timeout_ms
        self._sent_ma = -1
        self._sent_cp = None
        self._since_sent_ms = 0
        self._enabled = False
        self._current_idx = None   # positions of 14/18/22 in meters/0/values, [] = no meter

    async def _req(self, method, path, payload=None):
        """One HTTP exchange under the timeout; the parsed JSON answer (None when empty or not
        JSON). Raises HttpError unless the status is 200."""
        body = None if payload is None else json.dumps(payload).encode()
        status, raw = await asyncio.wait_for_ms(
            _exchange(self.host, self.port, method, path, body), self.timeout_ms)
        if status != 200:
            raise (HttpNotFound if status == 404 else HttpError)(
                "%s %s: HTTP %d" % (method, path, status))
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            return None

    async def poll_once(self, now_ms):
        """One exchange round: push the set-point and CP state, read the state. Raises on any
        failure (the caller counts it)."""
        if not self._enabled:
            await self._req("PUT", "evse/external_enabled_update", {"enabled": True})
            self._enabled = True
        sent = self.limit_ma
        want = sent
        if want != 0 and want < 6000:
            want = 0   # the EVSE takes 0 or 6..32 A
        if want != self._sent_ma or self._since_sent_ms >= _REFRESH_MS:
            await self._req("PUT", "evse/external_current_update", {"current": want})
            self._sent_ma = want
            self._since_sent_ms = 0
        if self.supports_cp_disconnect and self.cp_disconnect != self._sent_cp:
            try:
                await self._req("PUT", "evse/control_pilot_disconnect_update",
                                {"disconnect": self.cp_disconnect})
                self._sent_cp = self.cp_disconnect
            except HttpNotFound as e:
                # A charger without the feature (WARP1, WARP2 without "cp_disconnect") has no
                # such endpoint: say so and go on. Raising here failed every poll while a phase
                # switch wanted the pilot off: its 0 A was never read, the switch could only be
                # aborted (and it toggled on stale readings before the 0 A had to be confirmed).
                self.supports_cp_disconnect = False
                self.cp_disconnect = False
                self.last_error = "no CP disconnect: %s" % e
        self.pushed_cp = self.cp_disconnect
        st = await self._req("GET", "evse/state")
        if not isinstance(st, dict) or not isinstance(st.get("charger_state"), int):
            raise HttpError("evse/state: unexpected answer")
        cs = st["charger_state"]
        self.vehicle_connected = cs in (1, 2, 3)
        self.charging = cs == 3
        allowed = st.get("allowed_charging_current")
        self.applied_ma = allowed if isinstance(allowed, int) else -1
        await self._read_currents()
        self.pushed_ma = sent      # only now: the state was read after the set-point
        self.seen(now_ms)

    async def _read_currents(self):
        pc = self.phase_currents_ma
        if self._current_idx is None:
            try:
                ids = await self._req("GET", "meters/0/value_ids")
                self._current_idx = []
                if isinstance(ids, list):
                    for want in (_CURRENT_IDS, _CURRENT_IDS_SUM):
                        if all(i in ids for i in want):
                            self._current_idx = [ids.index(i) for i in want]
                            break
            except HttpError:
                self._current_idx = []
        if self._current_idx:
            vals = await self._req("GET", "meters/0/values")
            if not isinstance(vals, list) or len(vals) <= max(self._current_idx):
                raise HttpError("meters/0/values: unexpected answer")
            for p in range(3):
                v = vals[self._current_idx[p]]
                pc[p] = int(abs(v) * 1000) if isinstance(v, (int, float)) else 0
            self.has_meter = True
        else:
            # No meter: assume the car draws what it may (conservative for DLM).
            est = self.applied_ma if self.charging and self.applied_ma > 0 else 0
            pc[0] = pc[1] = pc[2] = est
            self.has_meter = False

    async def run(self, clock):
        while True:
            now = clock.ticks_ms()
            try:
                await self.poll_once(now)
            except Exception as e:  # noqa: BLE001 - timeouts, refused, bad answers: retry
                self._enabled = False
                self._sent_ma = -1
                self._sent_cp = None
                self.pushed_ma = -1
                self.failed(clock.ticks_ms(), "%s %s" % (type(e).__name__, e))
                await clock.sleep_ms(self.poll_ms)   # no fast retries against a dead peer
            t0 = clock.ticks_ms()
            await self.wait_poll(clock, self.poll_ms)
            self._since_sent_ms += time.ticks_diff(clock.ticks_ms(), t0)
