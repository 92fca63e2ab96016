# The MQTT subsystem's rare paths: installing it at boot, the mqtt/config rule, starting client
# and bridge, stopping them, an incoming write. service.py and bridge.py import this module for
# one call and drop it again (firmware.call_once), so its code is on the heap only while it
# runs (heap, docs/mqtt.md). It imports the client only where it needs it: at boot and while
# MQTT is off the client is not loaded.
import asyncio
import binascii
import json
from array import array

from micropython import const

from firmware.api.config import BOOL, INT, STR, Field
from firmware.api.registry import MAX_BODY_BYTES, ApiError
_KEEPALIVE_S = const(20)        # ping after 20 s without traffic either way ...
_ACK_TIMEOUT_MS = const(8000)   # ... so a dead broker is noticed within ~30 s
_FLUSH_MS = const(2000)         # what is queued at a restart/disable may take this long to go out
_QUEUE_SPARE = const(16)        # queue = one state per registry object + room for commands


def install(app):
    """service.install(app): register mqtt/config and mqtt/state; return the coroutine running
    MQTT."""
    from firmware.mqtt.service import MqttConfig, MqttService, _check
    # The board's id in hex: its full unique id (MAC on the ESP32) when the board offers
    # unique_id(), else the chip id suffix that also names the setup access point.
    board = getattr(app, "board", None)
    uid = None
    for name in ("unique_id", "unique_suffix"):
        fn = getattr(board, name, None) if board is not None else None
        if fn is not None:
            uid = fn() if callable(fn) else fn
            break
    if isinstance(uid, (bytes, bytearray)):
        uid = binascii.hexlify(uid).decode()
    device_id = str(uid) if uid else "000000"
    cfg = MqttConfig("mqtt/config", [
        Field("enable", BOOL, False),
        Field("broker_host", STR, "", hi=64),
        Field("broker_port", INT, 1883, 1, 65535),
        Field("client_id", STR, "pvcc-" + device_id, 1, 64),
        Field("user", STR, "", hi=64),
        Field("password", STR, "", hi=64, secret=True),
        Field("prefix", STR, "pvcc/" + device_id, 1, 64),
        Field("interval", INT, 1, 1, 3600),  # seconds between two publications of one object
        Field("read_only", BOOL, False),
        Field("discovery", BOOL, False),
        Field("discovery_prefix", STR, "homeassistant", 1, 64),
    ], app.store, _check)
    cfg.load()
    app.registry.add("mqtt/config", cfg)
    configs = getattr(app, "configs", None)
    if configs is not None:
        configs["mqtt/config"] = cfg
    svc = MqttService(app.clock, app.registry, cfg, device_id)
    app.registry.add("mqtt/state", svc)
    app.mqtt = svc
    return [svc.run()]


def config_error(v):
    """mqtt/config's cross-field rule: an error message, or None."""
    if v["enable"] and not v["broker_host"]:
        return "Key 'broker_host' must be set when MQTT is enabled"
    for key in ("prefix", "discovery_prefix"):  # both at least 1 character long (Field)
        t = v[key]
        if "+" in t or "#" in t or "\x00" in t:
            return "Key '%s' must not contain '+', '#' or NUL" % key
        if t[:1] == "/" or t[-1:] == "/":
            return "Key '%s' must not start or end with '/'" % key
    return None


def start(svc, v):
    """Client and bridge for the mqtt/config values `v` of the MqttService `svc`: returns the
    bridge (its client in .client) and the tasks running them."""
    from firmware.mqtt.bridge import Bridge
    from firmware.mqtt.client import MQTTClient
    reg = svc.registry
    prefix = v["prefix"]
    c = MQTTClient(svc.clock, v["broker_host"], v["broker_port"], v["client_id"], v["user"],
                   v["password"], keepalive_s=_KEEPALIVE_S,
                   will=(prefix + "/availability", "offline", 1, True),
                   queue_len=len(reg.paths()) + _QUEUE_SPARE, rx_bytes=MAX_BODY_BYTES + 256,
                   ack_timeout_ms=_ACK_TIMEOUT_MS, log=svc.log)
    b = Bridge(svc.clock, reg, c, prefix, v["interval"] * 1000, v["read_only"], svc.dirty,
               svc.log)
    c.on_connect = b.on_connect
    c.on_message = b.on_message
    c.on_oversize = b.on_oversize
    c.on_drop = b.on_drop
    if v["discovery"]:
        b.discovery = (svc.device_id, v["discovery_prefix"])
    setup(b)
    return b, [asyncio.create_task(c.run()), asyncio.create_task(b.run())]


def setup(b):
    """Bridge `b` learns the registry's paths (after every subsystem registered) and subscribes
    to the _update topics of the writable ones."""
    reg = b.registry
    b.paths = reg.paths()
    # All bits set: every entry -1 (_UNSENT), nothing published yet.
    b.sent = array("i", b"\xff" * (4 * len(b.paths)))
    b.hashes = array("i", b"\xff" * (4 * len(b.paths)))
    if not b.read_only:
        for path in b.paths:
            # Writable as the registry sees it: an object with write() (or write_body()), or a
            # tuple entry with a write function (meters/N/update, the API meter).
            obj = reg.get_object(path)
            if (len(obj) > 2 if type(obj) is tuple
                    else hasattr(obj, "write") or hasattr(obj, "write_body")):
                b.client.subscribe(b.prefix + "/" + path + "_update", 1)


def write(b, topic, payload, retain):
    """Bridge `b` got a message on <prefix>/<path>_update: a write (payload None: it was too
    large). A rejected one is reported on <prefix>/mqtt/error."""
    p = b.prefix
    if not (len(topic) > len(p) + 8 and topic.startswith(p) and topic[len(p)] == "/"
            and topic.endswith("_update")):
        return
    path = topic[len(p) + 1:-7]
    if retain or payload is not None and not payload:
        # (A retained one however large: the broker would replay it, and its 413, at every
        # reconnect.)
        b.log(("mqtt: ignored retained message on %s" if retain
               else "mqtt: ignored empty message on %s") % topic)
        return
    if payload is None:
        status, message = 413, "Payload too large"
    elif b.read_only:
        status, message = 405, "MQTT is read-only"
    else:
        try:
            b.registry.write(path, payload)
            b.dirty.add(b.registry.get_object(path))
            return
        except ApiError as e:
            status, message = e.status, e.message
        except Exception as e:  # noqa: BLE001 - an object's bug must not break MQTT
            status, message = 500, "write failed: %r" % (e,)
    b.rejected += 1
    b.log("mqtt: rejected write on %s: %d %s" % (topic, status, message))
    body = json.dumps({"topic": topic, "status": status, "error": message})
    from firmware.mqtt.client import COMMAND  # loaded: the bridge runs
    b.client.publish(p + "/mqtt/error", body, False, 1, COMMAND)


async def stop(b, new):
    """Stop bridge `b`'s client. What the new config `new` (the mqtt/config values from now on)
    no longer publishes is removed first: discovery entities when discovery goes off (or
    moves), then 'offline'."""
    from firmware.mqtt.client import COMMAND  # loaded: the bridge runs
    c = b.client
    if c.connected:
        if b.discovery is not None and not (
                new["enable"] and new["broker_host"] == c.host
                and new["broker_port"] == c.port and new["discovery"]
                and new["discovery_prefix"] == b.discovery[1]):
            await b.announce(True)
        # A clean DISCONNECT suppresses the last will: say offline ourselves.
        c.publish(b.prefix + "/availability", "offline", True, 1, COMMAND)
    await c.stop(_FLUSH_MS)
