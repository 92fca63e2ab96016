# Registry <-> MQTT topics, the reference firmware's scheme (DOMAIN 6):
#   <prefix>/<path>          every object, retained, when it changed, at most once per interval
#   <prefix>/<path>_update   writes, through Registry.write (the HTTP API's validation)
#   <prefix>/mqtt/error      a rejected write: {"topic", "status", "error"} (not retained)
#   <prefix>/availability    "online" / "offline" (the client's last will)
# Retained or empty messages to _update topics are ignored: a retained command would be replayed
# by the broker on every reconnect.
import asyncio
import json
import time

from micropython import const

from firmware.api.registry import ApiError
from firmware.mqtt.client import STATE, COMMAND

_UPDATE = "_update"
_MIN_SCAN_MS = const(50)
_CONFIG_POLL_MS = const(10000)  # configs are published on change notice; this is the safety net


class Bridge:
    """`dirty` is a set of paths whose objects announced a change (config listeners); it is
    shared with the owner so listeners outlive a bridge."""

    def __init__(self, clock, registry, client, prefix, interval_ms, read_only, dirty=None,
                 log=None):
        self.clock = clock
        self.registry = registry
        self.client = client
        self.prefix = prefix
        self.interval_ms = interval_ms
        self.read_only = read_only
        self.dirty = dirty if dirty is not None else set()
        self.log = log or print
        self.scan_ms = max(_MIN_SCAN_MS, interval_ms // 4)
        self.availability_topic = prefix + "/availability"
        self.error_topic = prefix + "/mqtt/error"
        self.on_connect_extra = None  # e.g. discovery: called after our own on_connect
        self._paths = []
        self._config_paths = set()
        self._last = {}     # path -> last published JSON text (this connection)
        self._sent_ms = {}  # path -> when it was last published
        self._polled_ms = {}
        self.rejected = 0
        self.published = 0

    def will(self):
        return (self.availability_topic, "offline", 1, True)

    def setup(self):
        """Learn the registry's paths (after every subsystem registered) and subscribe to the
        _update topics of the writable ones."""
        reg = self.registry
        self._paths = reg.paths()
        for path in self._paths:
            obj = reg.get_object(path)
            if hasattr(obj, "subscribe"):
                self._config_paths.add(path)
            if not self.read_only and hasattr(obj, "write"):
                self.client.subscribe(self.topic(path) + _UPDATE, 1)

    def topic(self, path):
        return self.prefix + "/" + path

    # ---- client callbacks (run in the client's receive task) ----

    def on_connect(self):
        self._last = {}
        self._sent_ms = {}
        self.client.publish(self.availability_topic, "online", True, 1, COMMAND)
        if self.on_connect_extra is not None:
            self.on_connect_extra()

    def on_message(self, topic, payload, retained):
        path = self._update_path(topic)
        if path is None:
            return
        if retained or not payload:
            what = "retained" if retained else "empty"
            self.log("mqtt: ignored %s message on %s" % (what, topic))
            return
        if self.read_only:
            self._reject(topic, 405, "MQTT is read-only")
            return
        try:
            self.registry.write(path, payload)
        except ApiError as e:
            self._reject(topic, e.status, e.message)
            return
        except Exception as e:  # noqa: BLE001 - an object's bug must not break MQTT
            self._reject(topic, 500, "write failed: %r" % (e,))
            return
        self.dirty.add(path)

    def on_oversize(self, topic):
        if self._update_path(topic) is not None:
            self._reject(topic, 413, "Payload too large")

    def on_drop(self, topic):
        """The client dropped a queued state: forget it was sent, so the next scan sends it."""
        p = self.prefix
        if topic.startswith(p) and len(topic) > len(p) + 1:
            self._last.pop(topic[len(p) + 1:], None)

    def _update_path(self, topic):
        p = self.prefix
        if (len(topic) > len(p) + 1 + len(_UPDATE) and topic.startswith(p)
                and topic[len(p)] == "/" and topic.endswith(_UPDATE)):
            return topic[len(p) + 1:-len(_UPDATE)]
        return None

    def _reject(self, topic, status, message):
        self.rejected += 1
        self.log("mqtt: rejected write on %s: %d %s" % (topic, status, message))
        body = json.dumps({"topic": topic, "status": status, "error": message})
        self.client.publish(self.error_topic, body, False, 1, COMMAND)

    # ---- publishing ----

    def scan(self):
        """Publish every object that changed and whose interval has passed."""
        if not self.client.connected:
            return  # on_connect re-publishes everything anyway
        now = self.clock.ticks_ms()
        for path in self._paths:
            self._scan_one(path, now)

    def _scan_one(self, path, now):
        d = time.ticks_diff
        sent = self._sent_ms.get(path)
        if sent is not None and d(now, sent) < self.interval_ms:
            return
        if path in self._config_paths and sent is not None and path not in self.dirty:
            polled = self._polled_ms.get(path, sent)
            if d(now, polled) < _CONFIG_POLL_MS:
                return
        self._polled_ms[path] = now
        self.dirty.discard(path)
        try:
            text = json.dumps(self.registry.read(path))
        except Exception as e:  # noqa: BLE001 - one broken object must not stop the rest
            if sent is None:
                self.log("mqtt: cannot read %s: %r" % (path, e))
                self._sent_ms[path] = now
            return
        if text == self._last.get(path):
            return
        if self.client.publish(self.topic(path), text, True, 0, STATE):
            self._last[path] = text
            self._sent_ms[path] = now
            self.published += 1

    async def run(self):
        # One object per asyncio turn: serialising all of them at once (~15 ms on the ESP32 for
        # the 48 objects of make sim) would delay the control loop's wake-up by that much.
        while True:
            if self.client.connected:
                now = self.clock.ticks_ms()
                for path in self._paths:
                    self._scan_one(path, now)
                    await asyncio.sleep_ms(0)
            await self.clock.sleep_ms(self.scan_ms)
