# MQTT 3.1.1 packet encoding (OASIS standard, sections 2 and 3): what a connection needs once
# (CONNECT, the text of a refused CONNACK), which the client imports for one call and drops again
# (heap, docs/mqtt.md), and for the golden-byte tests the packets only a broker sends. The
# encoders of every packet live in firmware/mqtt/client.py.
from micropython import const

from firmware.mqtt.client import _build, publish  # noqa: F401

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


def refused(code):
    """Why a CONNACK with return code `code` (3.2.2.3) refused the connection."""
    why = ("unacceptable protocol version", "identifier rejected", "server unavailable",
           "bad user name or password", "not authorized")
    return "connection refused: " + (why[code - 1] if code <= len(why) else str(code))


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
