# Asyncio MQTT 3.1.1 client for the board: all socket I/O happens in the client's own tasks, on
# non-blocking sockets (asyncio streams), so a slow, paused or absent broker never delays another
# task. Callers only enqueue: publish() returns at once.
#
# Outages are detected by timeouts, checked by one supervisor loop on the firmware clock: no
# CONNACK within connect_timeout, no PINGRESP/PUBACK/SUBACK within ack timeout, a write that does
# not drain within write timeout. Then the connection is dropped and retried with exponential
# backoff. A clean session is used: subscriptions are renewed on every connect.
#
# Heap: this module is loaded only while MQTT is enabled (firmware/mqtt/service.py). Each
# function, and each distinct name (interned for good), costs heap, so the client has few
# methods, and its times and flags live in one list and one int indexed by constants. The
# receive buffer holds fixed headers and topics; an accepted message's payload gets its own
# buffer for as long as its handler runs.
import asyncio
import socket
import time

from micropython import const

from firmware import call_once

_TICK_MS = const(200)          # supervisor period: deadline resolution
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)
_MAX_INFLIGHT = const(4)       # unacknowledged QoS 1 publishes at once
_DEFAULT_RX_BYTES = const(4096 + 256)  # largest accepted write body (registry) plus its topic
_HEAD_BYTES = const(256)       # fixed headers, control packets, a received PUBLISH's topic
_SUB_HEAD = const(6)           # SUBSCRIBE's fixed header (<= 4 bytes here) and packet id
_RESOLVE_AFTER_FAILS = const(3)  # re-resolve a host name after this many failed connects
# CONNECT and a refused CONNACK's text are needed once per connection, a received PUBLISH only
# for a write: that code lives in packet.py, imported for the call and dropped again
# (firmware.call_once).
_ONCE = "firmware.mqtt.packet"

# packet types (MQTT 3.1.1, 2.2.1)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)  # low nibble 0b0010 is mandatory for SUBSCRIBE (3.8.1)
_SUBACK = const(0x90)
_PINGRESP = const(0xD0)

STATE = const(0)    # a retained state: only its newest value matters, may be dropped
COMMAND = const(1)  # everything else (errors, discovery, availability): never dropped for states

# queue entry fields
_TOPIC = const(0)
_PAYLOAD = const(1)
_QOS = const(2)
_RETAIN = const(3)
_KIND = const(4)

# MQTTClient.flags bits
_RUNNING = const(1)
_PING_DUE = const(2)
_SUB_DUE = const(4)       # subscriptions to (re)send
_SUB_WAIT = const(8)      # a SUBSCRIBE awaits its SUBACK
_DISCONNECT_DUE = const(16)

# MQTTClient.ticks indexes: when (ms), or None
_DEADLINE = const(0)      # CONNACK due by
_WRITE = const(1)         # a write started and has not drained yet
_PING = const(2)          # PINGREQ sent, no PINGRESP yet
_TX = const(3)            # last packet sent
_RX = const(4)            # last packet received


class MQTTClient:
    """`on_message(topic_str, payload_bytearray, retained)` runs in the receive task; an
    exception it raises is logged, never breaks the connection. `on_oversize(topic_str, retained)` is
    told about a message that was skipped because it exceeds rx_bytes (or the heap had no room
    for it). `on_connect()` runs in the receive task after every successful CONNACK (re-publish
    retained state there)."""

    def __init__(self, clock, host, port=1883, client_id="", user="", password="",
                 keepalive_s=30, will=None, queue_len=32, rx_bytes=_DEFAULT_RX_BYTES,
                 connect_timeout_ms=10000, ack_timeout_ms=10000, write_timeout_ms=10000,
                 on_message=None, on_connect=None, on_oversize=None, log=None):
        self.clock = clock
        self.host = host
        self.port = port
        self.client_id = client_id
        self.user = user
        self.password = password
        self.keepalive_s = keepalive_s
        self.will = will  # (topic, payload, qos, retain)
        self.queue_len = queue_len
        self.rx_bytes = rx_bytes  # largest accepted message: topic + payload
        self.connect_timeout_ms = connect_timeout_ms
        self.ack_timeout_ms = ack_timeout_ms
        self.write_timeout_ms = write_timeout_ms
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_oversize = on_oversize
        self.on_drop = None  # on_drop(topic): a queued STATE was dropped (publish it again later)
        self.log = log or print
        self._ip = None         # the broker's address, resolved once (see _address)
        self._ip_fails = 0
        self._rx = bytearray(_HEAD_BYTES)
        self._queue = []        # entries [topic, payload, qos, retain, kind], oldest first
        self._inflight = {}     # pid -> (queue entry, or None for the SUBSCRIBE; sent_ms)
        self._acks = []         # pids of received QoS 1 messages to acknowledge
        self._subs = bytearray(_SUB_HEAD)  # room for a SUBSCRIBE's head, then its payload
        self._pid = 0           # the last packet id used
        self.flags = 0          # _RUNNING, _PING_DUE, ...
        self.ticks = [None] * 5  # _DEADLINE, _WRITE, ...
        self.event = asyncio.Event()  # set when there may be something to send
        self._tasks = [None, None]  # the connection's transmit and receive tasks
        self._stream = None     # asyncio's reader and writer (one object in MicroPython)
        self._fail = None       # why the current connection ends
        self.connected = False
        # counters, readable by tests, the benchmark and mqtt/state
        self.connects = 0
        self.dropped = 0
        self.last_error = None

    # ---- API used by the rest of the firmware: never blocks ----

    def subscribe(self, topic, qos=1):
        """Remember a subscription; (re)sent on every connect. They are kept as the SUBSCRIBE
        payload itself (3.8.3: each topic with its 2-byte length, then the QoS byte): one bytes
        object, not objects per topic."""
        t = topic.encode()
        subs = self._subs
        i = _SUB_HEAD
        while i < len(subs):  # an earlier subscription to the same topic goes
            end = i + 3 + ((subs[i] << 8) | subs[i + 1])
            if subs[i + 2:end - 1] == t:
                subs = subs[:i] + subs[end:]
                break
            i = end
        self._subs = subs + bytes((len(t) >> 8, len(t) & 0xFF)) + t + bytes((qos,))
        if self.connected:
            self.flags |= _SUB_DUE
            self.event.set()

    def publish(self, topic, payload, retain=False, qos=0, kind=COMMAND):
        """Enqueue a message. A STATE replaces a queued STATE of the same topic; on overflow the
        oldest STATE is dropped. Returns False when the message was dropped."""
        q = self._queue
        if kind == STATE:
            for e in q:
                if e[_KIND] == STATE and e[_TOPIC] == topic:
                    e[_PAYLOAD] = payload
                    e[_RETAIN] = retain
                    e[_QOS] = qos
                    self.event.set()
                    return True
        if len(q) >= self.queue_len:
            for i in range(len(q)):
                if q[i][_KIND] == STATE:  # the oldest state makes room
                    e = q.pop(i)
                    self.dropped += 1
                    if self.on_drop is not None:
                        try:
                            self.on_drop(e[_TOPIC])
                        except Exception as x:  # noqa: BLE001 - a handler bug is logged only
                            self.log("mqtt: handler failed: %r" % (x,))
                    break
            else:
                # Only commands queued: a new state waits for the next publish round; commands
                # get a second queue_len of room before we have to refuse (bounded memory).
                if kind == STATE or len(q) >= 2 * self.queue_len:
                    self.dropped += 1
                    return False
        q.append([topic, payload, qos, retain, kind])
        self.event.set()
        return True

    def queued(self):
        return len(self._queue) + len(self._inflight)

    async def run(self):
        """Connect, serve and reconnect until stop(). Each round supervises one connection
        (the _connection task and its receive task) and drops it when a deadline passed."""
        self.flags |= _RUNNING
        clock = self.clock
        ticks = self.ticks
        d = time.ticks_diff
        backoff_ms = _BACKOFF_MIN_MS
        while self.flags & _RUNNING:
            self._fail = None
            ticks[_DEADLINE] = time.ticks_add(clock.ticks_ms(), self.connect_timeout_ms)
            self._tasks[0] = asyncio.create_task(self._connection())
            accepted = False
            while True:
                await clock.sleep_ms(_TICK_MS)
                accepted = accepted or self.connected
                if not self.flags & _RUNNING or self._fail is not None:
                    break
                if self._tasks[0] is None or self._tasks[0].done():
                    self._fail = "connection ended"
                    break
                now = clock.ticks_ms()
                ack_ms = self.ack_timeout_ms
                if ticks[_DEADLINE] is not None and d(now, ticks[_DEADLINE]) > 0:
                    self._fail = "timeout waiting for CONNACK"
                elif ticks[_WRITE] is not None and d(now, ticks[_WRITE]) > self.write_timeout_ms:
                    self._fail = "write timeout"
                elif ticks[_PING] is not None and d(now, ticks[_PING]) > ack_ms:
                    self._fail = "no PINGRESP"
                else:
                    for e, sent_ms in self._inflight.values():
                        if d(now, sent_ms) > ack_ms:
                            self._fail = "no SUBACK" if e is None else "no PUBACK"
                            break
                if self._fail is not None:
                    break
                # Ping when we sent nothing (the protocol's keepalive) and also when we heard
                # nothing for a keepalive period: a stream of QoS 0 states alone would never
                # reveal a dead broker.
                ka = self.keepalive_s * 1000
                if (self.connected and ka and not self.flags & _PING_DUE and ticks[_PING] is None
                        and (d(now, ticks[_TX]) >= ka or d(now, ticks[_RX]) >= ka)):
                    self.flags |= _PING_DUE
                    self.event.set()
            self.close(self._fail or "stopped")
            if accepted:
                backoff_ms = _BACKOFF_MIN_MS
            if not self.flags & _RUNNING:
                break
            self.log("mqtt: disconnected (%s), retry in %d ms" % (self.last_error, backoff_ms))
            waited = 0
            while self.flags & _RUNNING and waited < backoff_ms:
                await clock.sleep_ms(_TICK_MS)
                waited += _TICK_MS
            backoff_ms = min(backoff_ms * 2, _BACKOFF_MAX_MS)

    async def stop(self, ms=2000):
        """Send what is queued (for up to `ms`), then DISCONNECT (no last will) and close."""
        waited = 0
        while self.connected and (self._queue or self._inflight or self._acks) and waited < ms:
            await self.clock.sleep_ms(50)
            waited += 50
        if self.connected:
            # The transmit task sends it (one writer per socket), then we hang up.
            self.flags |= _DISCONNECT_DUE
            self.event.set()
            waited = 0
            while self.connected and self.flags & _DISCONNECT_DUE and waited < 1000:
                await self.clock.sleep_ms(20)
                waited += 20
        self.flags &= ~_RUNNING
        self.close("stopped")

    # ---- connection handling ----

    def close(self, reason):
        """End the connection (if any): its tasks, its socket; unacknowledged QoS 1 messages
        go out again, first, on the next connection."""
        self.last_error = reason
        was = self.connected
        self.connected = False
        cur = asyncio.current_task()
        for t in self._tasks:
            if t is not None and t is not cur and not t.done():
                t.cancel()
        self._tasks[0] = self._tasks[1] = None
        if self._stream is not None:
            # MicroPython's Stream.close() does nothing (wait_closed() closes): close the
            # socket itself, now, so the broker sees the hang-up at once.
            try:
                getattr(self._stream, "s", self._stream).close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self._stream = None
        if self._inflight:
            self._queue = [e for e, _ in self._inflight.values() if e is not None] + self._queue
            self._inflight = {}
        self._acks = []
        self.flags &= _RUNNING
        ticks = self.ticks
        ticks[_DEADLINE] = ticks[_WRITE] = ticks[_PING] = None
        if was:
            self.log("mqtt: connection closed: %s" % reason)

    def _address(self):
        """The broker's IPv4 address as a string. Resolving a host name blocks (DNS; on the ESP32
        up to the resolver's timeout), so it is done once and again only after repeated failed
        connects, not at every reconnect attempt of an outage."""
        if self._ip is None or self._ip_fails >= _RESOLVE_AFTER_FAILS:
            self._ip_fails = 0
            a = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
            # A tuple on the ESP32, a struct sockaddr_in (bytes) on the Unix port; for anything
            # else (IPv6) the host name is used.
            ip = None
            if isinstance(a, tuple):
                ip = a[0] if isinstance(a[0], str) else None
            elif len(a) >= 8 and a[0] | (a[1] << 8) == socket.AF_INET:
                ip = "%d.%d.%d.%d" % (a[4], a[5], a[6], a[7])
            self._ip = ip or self.host
        return self._ip

    async def _connection(self):
        """One connection: CONNECT, then the transmit loop; the receive task handles CONNACK.
        Any failure ends this connection only (run() notices)."""
        try:
            self._ip_fails += 1  # until CONNACK
            _, self._stream = await asyncio.open_connection(self._address(), self.port)
            try:
                # TCP_NODELAY (IPPROTO_TCP 6, option 1, on lwIP and on Linux): a PUBLISH is
                # written as its head, then its payload (see _build); Nagle's algorithm would
                # hold the payload until the broker acknowledged the head (a delayed ACK).
                self._stream.s.setsockopt(6, 1, 1)
            except Exception:  # noqa: BLE001 - a port without it is slower, not wrong
                pass
            self._tasks[1] = asyncio.create_task(self._rx_loop())
            await self.send(call_once(_ONCE, "connect", self.client_id, self.keepalive_s,
                                      self.user, self.password, self.will))
            ev = self.event
            inflight = self._inflight
            while True:
                ev.clear()  # before looking: a publish() from now on sets it again
                flags = self.flags
                if flags & _DISCONNECT_DUE:
                    await self.send(b"\xe0\x00")  # DISCONNECT (3.14)
                    self.flags &= ~_DISCONNECT_DUE
                    while True:  # nothing more may be sent; stop() closes the socket
                        await ev.wait()
                        ev.clear()
                pkt = tail = None
                if not self.connected:
                    pass  # nothing before CONNACK
                elif self._acks:
                    pid = self._acks.pop(0)
                    pkt = bytes((_PUBACK, 2, pid >> 8, pid & 0xFF))  # PUBACK (3.4)
                elif flags & _PING_DUE:
                    self.flags &= ~_PING_DUE
                    self.ticks[_PING] = self.clock.ticks_ms()
                    pkt = b"\xc0\x00"  # PINGREQ (3.12)
                elif flags & _SUB_DUE and not flags & _SUB_WAIT:
                    self.flags = (flags & ~_SUB_DUE) | _SUB_WAIT
                    pid = self._next()
                    inflight[pid] = (None, self.clock.ticks_ms())
                    pkt = _subscribe(self._subs, pid)
                elif self._queue:
                    e = self._queue[0]
                    qos = e[_QOS]
                    # (QoS 1 beyond _MAX_INFLIGHT: a PUBACK wakes us; the SUBSCRIBE does not count)
                    if not qos or len(inflight) - (1 if flags & _SUB_WAIT else 0) < _MAX_INFLIGHT:
                        pid = self._next() if qos else 0
                        try:
                            tail = memoryview(e[_PAYLOAD])
                            pkt = publish_head(e[_TOPIC], len(tail), qos, e[_RETAIN], pid)
                        except MemoryError:
                            # No heap for the head now: the message waits, the connection stays.
                            tail = e = None
                            await self.clock.sleep_ms(_TICK_MS)
                            continue
                        if qos:
                            inflight[pid] = (e, self.clock.ticks_ms())
                        self._queue.pop(0)
                    e = None
                if pkt is None:
                    await ev.wait()
                else:
                    await self.send(pkt, tail)
                    pkt = tail = None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure ends this connection only
            if self._fail is None:
                self._fail = "%s: %s" % (type(e).__name__, e)

    async def send(self, data, tail=None):
        """Write one packet (the transmit task only: one writer per socket): `data`, then
        `tail` when given (a PUBLISH's payload, written without being copied into it)."""
        ticks = self.ticks
        ticks[_WRITE] = self.clock.ticks_ms()
        self._stream.write(data)
        if tail is not None:
            self._stream.write(tail)
        await self._stream.drain()
        ticks[_WRITE] = None
        ticks[_TX] = self.clock.ticks_ms()

    def _next(self):
        """The next free packet id."""
        while True:
            self._pid = self._pid % 0xFFFF + 1
            if self._pid not in self._inflight:
                return self._pid

    # ---- receiving ----

    async def _read(self, buf, n):
        """Read exactly n bytes into buf[:n]."""
        mv = memoryview(buf)
        off = 0
        while off < n:
            got = await self._stream.readinto(mv[off:n])
            if got is None:
                continue  # spurious wake-up, nothing readable yet
            if got == 0:
                raise OSError("connection closed by broker")
            off += got

    async def _rx_loop(self):
        rx = self._rx
        try:
            while True:
                # fixed header (2.2): type and flags, remaining length (up to 4 bytes, 2.2.3)
                await self._read(rx, 1)
                first = rx[0]
                kind = first & 0xF0
                n = 0
                shift = 0
                while True:
                    await self._read(rx, 1)
                    n |= (rx[0] & 0x7F) << shift
                    if not rx[0] & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise OSError("malformed remaining length")
                self.ticks[_RX] = self.clock.ticks_ms()
                if not self.connected and kind != _CONNACK or kind != _PUBLISH and n > len(rx):
                    kind = 0  # CONNACK must come first; a control packet fits the buffer
                if kind != _PUBLISH:
                    if kind:
                        await self._read(rx, n)
                    pid = (rx[0] << 8) | rx[1] if n >= 2 else -1
                    if kind == _PINGRESP:
                        self.ticks[_PING] = None
                    elif kind == _PUBACK and n >= 2:
                        if self._inflight.get(pid, (None,))[0] is not None:
                            del self._inflight[pid]
                            self.event.set()
                    elif kind == _SUBACK and n >= 3:
                        if self.flags & _SUB_WAIT and self._inflight.get(pid, (0,))[0] is None:
                            del self._inflight[pid]
                            self.flags &= ~_SUB_WAIT
                            for i in range(2, n):
                                if rx[i] & 0x80:
                                    self.log("mqtt: broker refused subscription %d" % (i - 2))
                            self.event.set()  # subscriptions added meanwhile go out now
                    elif kind == _CONNACK and n == 2 and not self.connected:
                        if rx[1]:  # return codes (3.2.2.3)
                            raise OSError(call_once(_ONCE, "refused", rx[1]))
                        self.ticks[_DEADLINE] = None
                        self._ip_fails = 0
                        self.connected = True
                        self.connects += 1
                        if len(self._subs) > _SUB_HEAD:
                            self.flags |= _SUB_DUE
                        self.log("mqtt: connected to %s:%d" % (self.host, self.port))
                        if self.on_connect is not None:
                            self.on_connect()
                        self.event.set()
                    else:
                        raise OSError("unexpected packet 0x%02x (%d bytes)" % (first, n))
                    continue

                # PUBLISH: only a write to one of our objects (rare): packet.py receives it.
                await call_once(_ONCE, "receive_publish", self, first, n)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - ends this connection only
            if self._fail is None:
                self._fail = "%s: %s" % (type(e).__name__, e)


# ---- packet encoding (MQTT 3.1.1, OASIS standard, sections 2 and 3) ----
# Pure functions (firmware/mqtt/packet.py exports them for the golden-byte tests, and has
# CONNECT); the method publish() above only enqueues. A packet is built in one bytearray of
# its exact size, its parts (str or bytes) copied through a memoryview (a str's memoryview is
# its UTF-8 bytes), never concatenated. Two packets are not copied whole: the SUBSCRIBE is
# built in place (_subscribe), a PUBLISH's payload (a JSON text of up to ~2 KB) is written
# after its head (publish_head; the socket has TCP_NODELAY, see _connection): a second block
# of that size is hard to find in a fragmented 100 KB heap.

def _build(header, body, length=(), tail=0):
    """The packet: fixed header (`header`: type and flags; the remaining length as a variable
    length integer, 2.2.3), then the `body` parts (bytes-like or str) back to back. The parts
    whose indexes are in `length` are MQTT strings (1.5.3): preceded by their 2-byte length.
    `tail`: that many more bytes follow the body, written apart (the remaining length counts
    them)."""
    n = tail
    for j, p in enumerate(body):
        k = len(memoryview(p))
        if j in length:
            n += 2 if k <= 0xFFFF else 268435456  # a longer string cannot be encoded
        n += k
    if n > 268435455:
        raise ValueError("packet too large")
    buf = bytearray(1 + (1 if n < 0x80 else 2 if n < 0x4000 else 3 if n < 0x200000 else 4)
                    + n - tail)
    buf[0] = header
    i = _put_length(buf, 1, n)
    for j, p in enumerate(body):
        p = memoryview(p)
        if j in length:
            buf[i] = len(p) >> 8
            buf[i + 1] = len(p) & 0xFF
            i += 2
        buf[i:i + len(p)] = p
        i += len(p)
    return buf



def _put_length(buf, i, n):
    """Writes the remaining length `n` (MQTT 3.1.1, 2.2.3: 7 bits per byte, low first) at
    buf[i]; returns the index after it."""
    while True:
        d = n & 0x7F
        n >>= 7
        buf[i] = d | 0x80 if n else d
        i += 1
        if not n:
            return i

def _subscribe(subs, pid):
    """SUBSCRIBE (3.8) with packet id `pid`, in place: `subs` is MQTTClient._subs, whose first
    _SUB_HEAD bytes are room for the fixed header (right-aligned) and the packet id. Returns a
    view of the packet: no copy of the topics (~0.7 KB, a block hard to find in a fragmented
    heap)."""
    n = len(subs) - _SUB_HEAD + 2  # remaining length: packet id + topics (< 2 MB)
    i = _SUB_HEAD - 3 - (1 if n < 0x80 else 2 if n < 0x4000 else 3)
    subs[i] = _SUBSCRIBE
    j = _put_length(subs, i + 1, n)
    subs[j] = pid >> 8
    subs[j + 1] = pid & 0xFF
    return memoryview(subs)[i:]


def publish_head(topic, n, qos=0, retain=False, pid=0):
    """PUBLISH (3.3) up to its payload of `n` bytes, which is written after it."""
    first = _PUBLISH | (qos << 1) | (1 if retain else 0)
    if qos:
        return _build(first, (topic, bytes((pid >> 8, pid & 0xFF))), (0,), n)
    return _build(first, (topic,), (0,), n)

