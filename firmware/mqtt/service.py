# The MQTT subsystem: the `mqtt/config` object, a read-only `mqtt/state`, and one task that runs
# client + bridge (+ Home Assistant discovery) while MQTT is enabled and restarts them when the
# config changes. install(app) is the composition root's entry.
import asyncio

from micropython import const

from firmware.api.config import BOOL, INT, STR, ConfigObject, Field
from firmware.api.registry import MAX_BODY_BYTES
from firmware.mqtt.bridge import Bridge
from firmware.mqtt.client import COMMAND, MQTTClient
from firmware.mqtt.discovery import Discovery

_KEEPALIVE_S = const(20)      # ping after 20 s without traffic either way ...
_ACK_TIMEOUT_MS = const(8000)  # ... so a dead broker is noticed within ~30 s
_FLUSH_MS = const(2000)       # what is queued at a restart/disable may take this long to go out
_QUEUE_SPARE = const(16)       # queue = one state per registry object + room for commands


def _topic_error(key, value, allow_empty=False):
    if not value:
        return None if allow_empty else "Key '%s' must not be empty" % key
    if "+" in value or "#" in value or "\x00" in value:
        return "Key '%s' must not contain '+', '#' or NUL" % key
    if value[0] == "/" or value[-1] == "/":
        return "Key '%s' must not start or end with '/'" % key
    return None


def _check(v):
    if v["enable"] and not v["broker_host"]:
        return "Key 'broker_host' must be set when MQTT is enabled"
    return _topic_error("prefix", v["prefix"]) or _topic_error(
        "discovery_prefix", v["discovery_prefix"])


class MqttConfig(ConfigObject):
    """A secret field written back as null (as it reads) keeps its value, so a client may PUT
    what it GOT."""

    def validate(self, payload):
        if isinstance(payload, dict):
            for f in self.fields:
                if f.secret and f.key in payload and payload[f.key] is None:
                    payload = dict(payload)
                    del payload[f.key]
        return ConfigObject.validate(self, payload)


def make_config(store, device_id):
    fields = [
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
    ]
    return MqttConfig("mqtt/config", fields, store, _check)


class MqttState:
    """mqtt/state: connection status for the UI and for users' scripts (read-only). Nothing in
    it changes by publishing itself (no queue length), or it would be re-sent every interval."""

    def __init__(self, service):
        self._svc = service

    def to_dict(self):
        c = self._svc.client
        b = self._svc.bridge
        return {
            "connected": bool(c and c.connected),
            "connects": c.connects if c else 0,
            "last_error": (c.last_error if c else None),
            "dropped": c.dropped if c else 0,
            "rejected_writes": b.rejected if b else 0,
        }


def device_id_of(board):
    """A stable id for this board, in hex: its full unique id (MAC on the ESP32) when the board
    offers unique_id(), else the chip id suffix that also names the setup access point."""
    uid = None
    for name in ("unique_id", "unique_suffix"):
        fn = getattr(board, name, None) if board is not None else None
        if fn is not None:
            uid = fn() if callable(fn) else fn
            break
    if isinstance(uid, (bytes, bytearray)):
        uid = "".join("%02x" % b for b in uid)
    return str(uid) if uid else "000000"


class MqttService:
    def __init__(self, clock, registry, config, device_id, log=None):
        self.clock = clock
        self.registry = registry
        self.config = config
        self.device_id = device_id
        self.log = log or print
        self.client = None
        self.bridge = None
        self.discovery = None
        self.dirty = set()  # paths announced changed by config listeners (see Bridge)
        self._changed = asyncio.Event()
        self._active = None  # the config values the running client was built from
        config.subscribe(self._on_config)

    def _on_config(self, obj):
        self._changed.set()

    def watch_configs(self):
        """Configs announce their changes: they are published at once instead of being polled."""
        for path in self.registry.paths():
            obj = self.registry.get_object(path)
            if hasattr(obj, "subscribe"):
                obj.subscribe(lambda o, p=path: self.dirty.add(p))

    def _start(self, v):
        c = MQTTClient(self.clock, v["broker_host"], v["broker_port"], v["client_id"], v["user"],
                       v["password"], keepalive_s=_KEEPALIVE_S,
                       queue_len=len(self.registry.paths()) + _QUEUE_SPARE,
                       rx_bytes=MAX_BODY_BYTES + 256, ack_timeout_ms=_ACK_TIMEOUT_MS,
                       log=self.log)
        b = Bridge(self.clock, self.registry, c, v["prefix"], v["interval"] * 1000,
                   v["read_only"], self.dirty, self.log)
        c.will = b.will()
        c.on_connect = b.on_connect
        c.on_message = b.on_message
        c.on_oversize = b.on_oversize
        c.on_drop = b.on_drop
        d = None
        if v["discovery"]:
            d = Discovery(c, self.device_id, v["prefix"], v["discovery_prefix"], v["read_only"])
            b.on_connect_extra = d.publish
        b.setup()
        self.client, self.bridge, self.discovery = c, b, d
        self._active = v
        return [asyncio.create_task(c.run()), asyncio.create_task(b.run())]

    async def _stop(self, new):
        """Stop the running client. What the new config no longer publishes is removed first:
        discovery entities when discovery goes off (or moves), then 'offline'."""
        old, c, b = self._active, self.client, self.bridge
        if c is None:
            return
        same_broker = (new["enable"] and new["broker_host"] == old["broker_host"]
                       and new["broker_port"] == old["broker_port"])
        if c.connected:
            if self.discovery is not None and not (
                    same_broker and new["discovery"]
                    and new["discovery_prefix"] == old["discovery_prefix"]):
                self.discovery.remove()
            # A clean DISCONNECT suppresses the last will: say offline ourselves.
            c.publish(b.availability_topic, "offline", True, 1, COMMAND)
        await c.stop(_FLUSH_MS)
        self.client = self.bridge = self.discovery = None
        self._active = None

    async def run(self):
        self.watch_configs()
        tasks = []
        while True:
            self._changed.clear()  # a change from here on starts another round
            if self._active is not None:
                await self._stop(self.config.values)
                for t in tasks:
                    t.cancel()
                tasks = []
            v = dict(self.config.values)
            if v["enable"]:
                tasks = self._start(v)
            await self._changed.wait()


def install(app):
    """Register mqtt/config and mqtt/state; return the coroutine running MQTT."""
    device_id = device_id_of(getattr(app, "board", None))
    cfg = make_config(app.store, device_id)
    cfg.load()
    app.registry.add("mqtt/config", cfg)
    configs = getattr(app, "configs", None)
    if configs is not None:
        configs["mqtt/config"] = cfg
    svc = MqttService(app.clock, app.registry, cfg, device_id)
    app.registry.add("mqtt/state", MqttState(svc))
    app.mqtt = svc
    return [svc.run()]
