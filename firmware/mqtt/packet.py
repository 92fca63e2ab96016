# MQTT 3.1.1 packets (OASIS standard, sections 2 and 3): what the client needs once per
# connection (CONNECT, the text of a refused CONNACK) or rarely (receiving a PUBLISH: a write),
# imported for one call and dropped again (heap, docs/mqtt.md), and for the golden-byte tests
# the packets only a broker sends. The encoders of every packet live in firmware/mqtt/client.py.
from micropython import const

from firmware.mqtt.client import _build, publish_head

_CONNECT = const(0x10)


def connect(client_id, keepalive_s, user=None, password=None, will=None):
    """CONNECT (3.1), clean session. `will` is (topic, payload, qos, retain) or None."""
    flags = 0x02
    parts = [b"\x00\x04MQTT\x04", None, client_id]
    if will is not None:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        parts += (topic, msg)
    if user:
        flags |= 0x80
        parts.append(user)
        if password:
            flags |= 0x40
            parts.append(password)
    parts[1] = bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return _build(_CONNECT, parts, range(2, len(parts)))


def publish(topic, payload, qos=0, retain=False, pid=0):
    """A whole PUBLISH packet (3.3) (the client writes its head and its payload apart)."""
    p = memoryview(payload)
    return publish_head(topic, len(p), qos, retain, pid) + p


def refused(code):
    """Why a CONNACK with return code `code` (3.2.2.3) refused the connection."""
    why = ("unacceptable protocol version", "identifier rejected", "server unavailable",
           "bad user name or password", "not authorized")
    return "connection refused: " + (why[code - 1] if code <= len(why) else str(code))


async def receive_publish(c, first, n):
    """The rest of a PUBLISH (3.3) that MQTTClient `c`'s receive task has read the fixed header
    of (`first`: type and flags, `n`: remaining length): the topic (and packet id) through the
    client's head buffer, then the payload; handed to c.on_message (c.on_oversize when it is
    too large), acknowledged (QoS 1). Our subscriptions are our own short topics: a longer one
    is a broken broker."""
    rx = c._rx
    qos = (first >> 1) & 3
    if n < 2:
        raise OSError("malformed PUBLISH")
    await c._read(rx, 2)
    tlen = (rx[0] << 8) | rx[1]
    head = tlen + (2 if qos else 0)
    if head > n - 2 or head > len(rx):
        raise OSError("malformed PUBLISH")
    await c._read(rx, head)
    try:
        topic = str(rx[:tlen], "utf-8")
    except UnicodeError:
        topic = None
    pid = (rx[tlen] << 8) | rx[tlen + 1] if qos else 0
    plen = n - 2 - head
    buf = None
    if plen <= c.rx_bytes:
        try:
            buf = bytearray(plen)
        except MemoryError:
            pass
    fn = None
    if buf is None:
        # Too large (or no room): skipped through the head buffer, never held whole.
        left = plen
        while left > 0:
            k = min(left, len(rx))
            await c._read(rx, k)
            left -= k
        c.log("mqtt: skipped %d byte message on %s" % (plen, topic))
        if topic is not None:
            fn, args = c.on_oversize, (topic, bool(first & 1))
    else:
        await c._read(buf, plen)
        if qos == 2:
            # We subscribe with QoS <= 1, so the broker must not send QoS 2: drop it.
            c.log("mqtt: dropped QoS 2 message on %s" % topic)
        elif topic is not None:
            fn, args = c.on_message, (topic, buf, bool(first & 1))
    if fn is not None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - a handler bug must not break us
            c.log("mqtt: handler failed: %s: %s" % (type(e).__name__, e))
    buf = args = None
    if qos == 1:
        c._acks.append(pid)
        c.event.set()


def puback(pid):
    return bytes((0x40, 2, pid >> 8, pid & 0xFF))


def subscribe(pid, topics):
    """SUBSCRIBE (3.8) for a list of (topic, max_qos): what MQTTClient.subscribe() collects."""
    parts = [bytes((pid >> 8, pid & 0xFF))]
    for topic, qos in topics:
        parts += (topic, bytes((qos,)))
    return _build(0x82, parts, range(1, len(parts), 2))


def topic_ok(topic, wildcards=False):
    """Whether `topic` (str) may be used: non-empty, at most 65535 bytes, no NUL, and no
    wildcard characters in a topic we publish to (4.7)."""
    if not topic or "\x00" in topic or len(topic) > 0xFFFF:
        return False
    return wildcards or not ("+" in topic or "#" in topic)
