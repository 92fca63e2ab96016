# MQTT 3.1.1 packet encoding (OASIS standard, sections 2 and 3): pure functions, no I/O, so the
# bytes are checked against golden frames on the host. Only what a device client needs.
from micropython import const

CONNECT = const(0x10)
CONNACK = const(0x20)
PUBLISH = const(0x30)
PUBACK = const(0x40)
SUBSCRIBE = const(0x82)  # low nibble 0b0010 is mandatory for SUBSCRIBE (3.8.1)
SUBACK = const(0x90)
PINGREQ = const(0xC0)
PINGRESP = const(0xD0)
DISCONNECT = const(0xE0)

MAX_REMAINING = const(268435455)  # 4-byte variable length integer (2.2.3)

PINGREQ_PKT = b"\xc0\x00"
DISCONNECT_PKT = b"\xe0\x00"

# CONNACK return codes (3.2.2.3), for log messages.
CONNACK_REASONS = ("accepted", "unacceptable protocol version", "identifier rejected",
                   "server unavailable", "bad user name or password", "not authorized")


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _remaining(n):
    """Variable length encoding of the remaining length."""
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("packet too large")
    out = bytearray()
    while True:
        d = n & 0x7F
        n >>= 7
        if n:
            out.append(d | 0x80)
        else:
            out.append(d)
            return out


def _str(s):
    s = _b(s)
    if len(s) > 0xFFFF:
        raise ValueError("string too long")
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


def _frame(first, body):
    return bytes((first,)) + _remaining(len(body)) + body


def connect(client_id, keepalive_s, user=None, password=None, will=None, clean=True):
    """CONNECT (3.1). `will` is (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        topic, msg, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(msg)
    if user:
        flags |= 0x80
        payload += _str(user)
        if password:
            flags |= 0x40
            payload += _str(password)
    head = b"\x00\x04MQTT\x04" + bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return _frame(CONNECT, head + payload)


def publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    first = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _str(topic)
    if qos:
        body += bytes((pid >> 8, pid & 0xFF))
    return _frame(first, body + _b(payload))


def puback(pid):
    return bytes((PUBACK, 2, pid >> 8, pid & 0xFF))


def subscribe(pid, topics):
    """SUBSCRIBE (3.8) for a list of (topic, max_qos)."""
    body = bytes((pid >> 8, pid & 0xFF))
    for topic, qos in topics:
        body += _str(topic) + bytes((qos,))
    return _frame(SUBSCRIBE, body)


def topic_ok(topic, wildcards=False):
    """Whether `topic` (str) may be used: non-empty, at most 65535 bytes, no NUL, and no
    wildcard characters in a topic we publish to (4.7)."""
    if not topic or "\x00" in topic or len(topic) > 0xFFFF:
        return False
    if not wildcards and ("+" in topic or "#" in topic):
        return False
    return True
