# Asyncio MQTT 3.1.1 client for the board: all socket I/O happens in the client's own tasks, on
# non-blocking sockets (asyncio streams), so a slow, paused or absent broker never delays another
# task. Callers only enqueue: publish() returns at once.
#
# Outages are detected by timeouts, checked by one supervisor loop on the firmware clock: no
# CONNACK within connect_timeout, no PINGRESP/PUBACK/SUBACK within ack timeout, a write that does
# not drain within write timeout. Then the connection is dropped and retried with exponential
# backoff. A clean session is used: subscriptions are renewed on every connect.
import asyncio
import socket
import time

from micropython import const

from firmware.mqtt import packet

_TICK_MS = const(200)          # supervisor period: deadline resolution
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)
_MAX_INFLIGHT = const(4)       # unacknowledged QoS 1 publishes at once
_DEFAULT_RX_BYTES = const(4096 + 256)  # largest accepted write body (registry) plus its topic
_RESOLVE_AFTER_FAILS = const(3)  # re-resolve a host name after this many failed connects

STATE = const(0)    # a retained state: only its newest value matters, may be dropped
COMMAND = const(1)  # everything else (errors, discovery, availability): never dropped for states

# queue entry fields
_TOPIC = const(0)
_PAYLOAD = const(1)
_QOS = const(2)
_RETAIN = const(3)
_KIND = const(4)


class MQTTError(Exception):
    pass


class MQTTClient:
    """`on_message(topic_str, payload_bytes, retained)` runs in the receive task; an exception it
    raises is logged, never breaks the connection. `on_oversize(topic_str)` is told about a
    message that was skipped because it exceeds the receive buffer. `on_connect()` runs after
    every successful CONNACK (re-publish retained state there)."""

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
        self.keepalive_ms = keepalive_s * 1000
        self._keepalive_s = keepalive_s
        self.will = will  # (topic, payload, qos, retain)
        self.queue_len = queue_len
        self.connect_timeout_ms = connect_timeout_ms
        self.ack_timeout_ms = ack_timeout_ms
        self.write_timeout_ms = write_timeout_ms
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_oversize = on_oversize
        self.on_drop = None  # on_drop(topic): a queued STATE was dropped (publish it again later)
        self.log = log or _print_log
        self._ip = None         # the broker's address, resolved once (see _address)
        self._ip_fails = 0
        self._rx = bytearray(rx_bytes)
        self._rxmv = memoryview(self._rx)
        self._queue = []        # entries [topic, payload, qos, retain, kind], oldest first
        self._inflight = {}     # pid -> (entry, sent_ms)
        self._acks = []         # pids of received QoS 1 messages to acknowledge
        self._subs = []         # [(topic, qos)]
        self._sub_pending = False
        self._sub_pid = 0
        self._sub_sent_ms = None
        self._pid = 0
        self._ping_due = False
        self._ping_sent_ms = None
        self._disconnect_due = False
        self._tx_event = asyncio.Event()
        self._reader = None
        self._writer = None
        self._io_task = None
        self._rx_task = None
        self._write_started_ms = None
        self._last_tx_ms = 0
        self._last_rx_ms = 0
        self._deadline_ms = None
        self._fail = None
        self._running = False
        self.connected = False
        # counters, readable by tests, the benchmark and a status object
        self.connects = 0
        self.dropped = 0
        self.rx_oversize = 0
        self.last_error = None

    # ---- API used by the rest of the firmware: never blocks ----

    def subscribe(self, topic, qos=1):
        """Remember a subscription; (re)sent on every connect."""
        for i, (t, _) in enumerate(self._subs):
            if t == topic:
                self._subs[i] = (topic, qos)
                break
        else:
            self._subs.append((topic, qos))
        if self.connected:
            self._sub_pending = True
            self._tx_event.set()

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
                    self._tx_event.set()
                    return True
        if len(q) >= self.queue_len and not self._drop_oldest_state():
            # Only commands queued: a new state waits for the next publish round; commands get
            # a second queue_len of room before we have to refuse (bounded memory).
            if kind == STATE or len(q) >= 2 * self.queue_len:
                self.dropped += 1
                return False
        q.append([topic, payload, qos, retain, kind])
        self._tx_event.set()
        return True

    def queued(self):
        return len(self._queue) + len(self._inflight)

    async def run(self):
        """Connect, serve and reconnect until stop()."""
        self._running = True
        backoff_ms = _BACKOFF_MIN_MS
        while self._running:
            if await self._session():
                backoff_ms = _BACKOFF_MIN_MS
            if not self._running:
                break
            self.log("mqtt: disconnected (%s), retry in %d ms" % (self.last_error, backoff_ms))
            waited = 0
            while self._running and waited < backoff_ms:
                await self.clock.sleep_ms(_TICK_MS)
                waited += _TICK_MS
            backoff_ms = min(backoff_ms * 2, _BACKOFF_MAX_MS)

    async def stop(self, flush_ms=2000):
        """Send what is queued (up to flush_ms), then DISCONNECT (no last will) and close."""
        waited = 0
        while (self.connected and (self._queue or self._inflight or self._acks)
               and waited < flush_ms):
            await self.clock.sleep_ms(50)
            waited += 50
        if self.connected:
            # The transmit task sends it (one writer per socket), then we hang up.
            self._disconnect_due = True
            self._tx_event.set()
            waited = 0
            while self.connected and self._disconnect_due and waited < 1000:
                await self.clock.sleep_ms(20)
                waited += 20
        self._running = False
        self._teardown("stopped")

    # ---- connection handling ----

    async def _session(self):
        """One connection: returns True when the broker accepted the CONNECT."""
        self._fail = None
        self._deadline_ms = time.ticks_add(self.clock.ticks_ms(), self.connect_timeout_ms)
        self._io_task = asyncio.create_task(self._connection())
        accepted = False
        while True:
            await self.clock.sleep_ms(_TICK_MS)
            accepted = accepted or self.connected
            if not self._running:
                break
            if self._fail is not None:
                break
            if self._io_task is None or self._io_task.done():
                self._fail = "connection ended"
                break
            reason = self._check(self.clock.ticks_ms())
            if reason:
                self._fail = reason
                break
        self._teardown(self._fail or "stopped")
        return accepted

    def _check(self, now):
        """Keepalive and outage detection; returns a reason when the connection is dead."""
        d = time.ticks_diff
        if self._deadline_ms is not None and d(now, self._deadline_ms) > 0:
            return "timeout waiting for CONNACK"
        w = self._write_started_ms
        if w is not None and d(now, w) > self.write_timeout_ms:
            return "write timeout"
        if self._ping_sent_ms is not None and d(now, self._ping_sent_ms) > self.ack_timeout_ms:
            return "no PINGRESP"
        if self._sub_sent_ms is not None and d(now, self._sub_sent_ms) > self.ack_timeout_ms:
            return "no SUBACK"
        for _, sent_ms in self._inflight.values():
            if sent_ms is not None and d(now, sent_ms) > self.ack_timeout_ms:
                return "no PUBACK"
        # Ping when we sent nothing (the protocol's keepalive) and also when we heard nothing
        # for a keepalive period: a stream of QoS 0 states alone would never reveal a dead broker.
        ka = self.keepalive_ms
        if (self.connected and ka and not self._ping_due and self._ping_sent_ms is None
                and (d(now, self._last_tx_ms) >= ka or d(now, self._last_rx_ms) >= ka)):
            self._ping_due = True
            self._tx_event.set()
        return None

    def _teardown(self, reason):
        self.last_error = reason
        was = self.connected
        self.connected = False
        cur = asyncio.current_task()
        for t in (self._io_task, self._rx_task):
            if t is not None and t is not cur and not t.done():
                t.cancel()
        self._io_task = self._rx_task = None
        if self._writer is not None:
            # MicroPython's Stream.close() does nothing (wait_closed() closes): close the
            # socket itself, now, so the broker sees the hang-up at once.
            try:
                getattr(self._writer, "s", self._writer).close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self._reader = self._writer = None
        # Unacknowledged QoS 1 messages go out again, first, on the next connection.
        if self._inflight:
            self._queue = [e for e, _ in self._inflight.values()] + self._queue
            self._inflight = {}
        self._acks = []
        self._ping_due = self._disconnect_due = False
        self._ping_sent_ms = self._sub_sent_ms = self._write_started_ms = self._deadline_ms = None
        if was:
            self.log("mqtt: connection closed: %s" % reason)

    async def _connection(self):
        try:
            await self._handshake()
            self._rx_task = asyncio.create_task(self._rx_loop())
            if self.on_connect is not None:
                self.on_connect()
            await self._tx_loop()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure ends this connection only
            if self._fail is None:
                self._fail = _describe(e)

    def _address(self):
        """The broker's IPv4 address as a string. Resolving a host name blocks (DNS; on the ESP32
        up to the resolver's timeout), so it is done once and again only after repeated failed
        connects, not at every reconnect attempt of an outage."""
        if self._ip is None or self._ip_fails >= _RESOLVE_AFTER_FAILS:
            self._ip_fails = 0
            ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
            self._ip = _ipv4_of(ai[-1]) or self.host
        return self._ip

    async def _handshake(self):
        self._ip_fails += 1  # until CONNACK
        self._reader, self._writer = await asyncio.open_connection(self._address(), self.port)
        pkt = packet.connect(self.client_id, self._keepalive_s, self.user, self.password,
                             self.will)
        await self._send(pkt)
        first, n = await self._read_header()
        if first != packet.CONNACK or n != 2:
            raise MQTTError("expected CONNACK, got 0x%02x" % first)
        await self._read_exactly(2)
        rc = self._rx[1]
        if rc:
            reason = packet.CONNACK_REASONS[rc] if rc < len(packet.CONNACK_REASONS) else str(rc)
            raise MQTTError("connection refused: " + reason)
        self._deadline_ms = None
        self._ip_fails = 0
        self._last_rx_ms = self.clock.ticks_ms()
        self.connected = True
        self.connects += 1
        self._sub_pending = bool(self._subs)
        self.log("mqtt: connected to %s:%d" % (self.host, self.port))

    async def _send(self, pkt):
        self._write_started_ms = self.clock.ticks_ms()
        self._writer.write(pkt)
        await self._writer.drain()
        self._write_started_ms = None
        self._last_tx_ms = self.clock.ticks_ms()

    def _next_pid(self):
        while True:
            self._pid = self._pid % 0xFFFF + 1
            if self._pid not in self._inflight and self._pid != self._sub_pid:
                return self._pid

    def _next_packet(self):
        if self._disconnect_due:
            return packet.DISCONNECT_PKT
        if self._acks:
            return packet.puback(self._acks.pop(0))
        if self._ping_due:
            self._ping_due = False
            self._ping_sent_ms = self.clock.ticks_ms()
            return packet.PINGREQ_PKT
        if self._sub_pending and self._sub_sent_ms is None:
            self._sub_pending = False
            self._sub_pid = self._next_pid()
            self._sub_sent_ms = self.clock.ticks_ms()
            return packet.subscribe(self._sub_pid, self._subs)
        if self._queue:
            e = self._queue[0]
            if e[_QOS] and len(self._inflight) >= _MAX_INFLIGHT:
                return None  # a PUBACK wakes us
            self._queue.pop(0)
            if e[_QOS]:
                pid = self._next_pid()
                self._inflight[pid] = (e, self.clock.ticks_ms())
                return packet.publish(e[_TOPIC], e[_PAYLOAD], 1, e[_RETAIN], pid)
            return packet.publish(e[_TOPIC], e[_PAYLOAD], 0, e[_RETAIN])
        return None

    async def _tx_loop(self):
        ev = self._tx_event
        while True:
            ev.clear()  # before looking: a publish() from now on sets it again
            pkt = self._next_packet()
            if pkt is None:
                await ev.wait()
                continue
            await self._send(pkt)
            if pkt is packet.DISCONNECT_PKT:
                self._disconnect_due = False
                while True:  # nothing more may be sent; stop() closes the socket
                    await ev.wait()
                    ev.clear()

    # ---- receiving ----

    async def _read_exactly(self, n, off=0):
        """Read n bytes into the receive buffer at `off` (n + off <= buffer size)."""
        mv = self._rxmv
        end = off + n
        while off < end:
            got = await self._reader.readinto(mv[off:end])
            if got is None:
                continue  # spurious wake-up, nothing readable yet
            if got == 0:
                raise MQTTError("connection closed by broker")
            off += got

    async def _skip(self, n):
        """Discard n bytes through the receive buffer: a huge payload is never held whole."""
        size = len(self._rx)
        while n > 0:
            k = n if n < size else size
            await self._read_exactly(k)
            n -= k

    async def _read_header(self):
        await self._read_exactly(1)
        first = self._rx[0]
        n = 0
        shift = 0
        while True:
            await self._read_exactly(1)
            b = self._rx[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return first, n
            shift += 7
            if shift > 21:
                raise MQTTError("malformed remaining length")

    async def _rx_loop(self):
        try:
            while True:
                first, n = await self._read_header()
                self._last_rx_ms = self.clock.ticks_ms()
                kind = first & 0xF0
                if kind == packet.PUBLISH:
                    await self._rx_publish(first, n)
                elif n > len(self._rx):
                    raise MQTTError("oversized packet 0x%02x" % first)
                else:
                    await self._read_exactly(n)
                    self._rx_control(kind, n)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - ends this connection only
            if self._fail is None:
                self._fail = _describe(e)

    def _rx_control(self, kind, n):
        rx = self._rx
        if kind == packet.PINGRESP:
            self._ping_sent_ms = None
        elif kind == packet.PUBACK and n >= 2:
            if self._inflight.pop((rx[0] << 8) | rx[1], None) is not None:
                self._tx_event.set()
        elif kind == packet.SUBACK and n >= 3:
            if (rx[0] << 8) | rx[1] == self._sub_pid:
                self._sub_sent_ms = None
                self._sub_pid = 0
                for i in range(2, n):
                    if rx[i] & 0x80:
                        self.log("mqtt: broker refused subscription %d" % (i - 2))
                self._tx_event.set()  # subscriptions added meanwhile go out now
        else:
            raise MQTTError("unexpected packet 0x%02x" % kind)

    async def _rx_publish(self, first, n):
        qos = (first >> 1) & 3
        retained = bool(first & 1)
        if n < 2:
            raise MQTTError("malformed PUBLISH")
        await self._read_exactly(2)
        tlen = (self._rx[0] << 8) | self._rx[1]
        head = tlen + (2 if qos else 0)
        if head > n - 2 or head > len(self._rx):
            raise MQTTError("malformed PUBLISH topic")
        await self._read_exactly(head)
        try:
            topic = str(self._rx[:tlen], "utf-8")
        except UnicodeError:
            topic = None
        pid = (self._rx[tlen] << 8) | self._rx[tlen + 1] if qos else 0
        plen = n - 2 - head
        if plen > len(self._rx):
            await self._skip(plen)
            self.rx_oversize += 1
            self.log("mqtt: skipped %d byte message on %s" % (plen, topic))
            if self.on_oversize is not None and topic is not None:
                self._call(self.on_oversize, topic)
        else:
            await self._read_exactly(plen)
            if qos == 2:
                # We subscribe with QoS <= 1, so the broker must not send QoS 2: drop it.
                self.log("mqtt: dropped QoS 2 message on %s" % topic)
            elif topic is not None and self.on_message is not None:
                self._call(self.on_message, topic, bytes(self._rxmv[:plen]), retained)
        if qos == 1:
            self._acks.append(pid)
            self._tx_event.set()

    def _call(self, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a handler bug must not break the client
            self.log("mqtt: handler failed: %s" % _describe(e))

    def _drop_oldest_state(self):
        q = self._queue
        for i in range(len(q)):
            if q[i][_KIND] == STATE:
                e = q.pop(i)
                self.dropped += 1
                if self.on_drop is not None:
                    self._call(self.on_drop, e[_TOPIC])
                return True
        return False


def _ipv4_of(sockaddr):
    """'a.b.c.d' from a getaddrinfo() address: a tuple on the ESP32, a struct sockaddr_in
    (bytes) on the Unix port. None for anything else (IPv6: the host name is used)."""
    if isinstance(sockaddr, tuple):
        return sockaddr[0] if isinstance(sockaddr[0], str) else None
    b = sockaddr
    if len(b) >= 8 and b[0] | (b[1] << 8) == socket.AF_INET:
        return "%d.%d.%d.%d" % (b[4], b[5], b[6], b[7])
    return None


def _describe(e):
    return "%s: %s" % (type(e).__name__, e.args[0] if e.args else "")


def _print_log(msg):
    print(msg)
