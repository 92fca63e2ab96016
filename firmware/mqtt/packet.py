# MQTT 3.1.1 packet encoding (OASIS standard, sections 2 and 3) for the golden-byte tests: the
# encoders the firmware needs live in firmware/mqtt/client.py (the firmware loads that module
# only), the rest here.
from firmware.mqtt.client import _build, connect, publish  # noqa: F401


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
