# Registry <-> MQTT topics, the reference firmware's scheme (DOMAIN 6):
#   <prefix>/<path>          every object, retained, when it changed, at most once per interval
#   <prefix>/<path>_update   writes, through Registry.write (the HTTP API's validation)
#   <prefix>/mqtt/error      a rejected write: {"topic", "status", "error"} (not retained)
#   <prefix>/availability    "online" / "offline" (the client's last will)
# Retained or empty messages to _update topics are ignored: a retained command would be replayed
# by the broker on every reconnect.
#
# Imported (with the client) only while MQTT is enabled: firmware/mqtt/service.py.
import asyncio
import binascii
import json
import time

from micropython import const

from firmware import call_once
from firmware.mqtt import unload
from firmware.mqtt.client import COMMAND, STATE

_MIN_SCAN_MS = const(50)
_CONFIG_POLL_MS = const(10000)  # configs are published on change notice; this is the safety net
_HASH_MASK = const(0x3FFFFFFF)  # 30 bits: a small int on the ESP32 too, never a heap object
_BACKLOG = const(4)             # run() waits while more messages are queued: few payloads held
_ANNOUNCE_RETRY_MS = const(30000)  # discovery that failed (no heap at a connect): again after this
# What runs once per start or stop, and an incoming write, lives in cold.py: imported for the
# call and dropped again (firmware.call_once), its code is not on the heap in between.
_COLD = "firmware.mqtt.cold"

# Per object (its index in paths) the bridge keeps two 32-bit numbers: in Bridge.sent when it
# was last published on this connection, in Bridge.hashes the CRC-32 (30 bits) of the JSON text
# published then; _UNSENT in both before. Times are the low 30 bits of ticks_ms (which wrap at
# 2**30 on the ESP32, at 2**62 on the Unix port): an age computed from them is right modulo
# 2**30 ms (12 days), far above any interval (<= 1 h).
_UNSENT = const(-1)
_MS_MASK = const(0x3FFFFFFF)


class Bridge:
    """`dirty` is a set of the objects (configs) that announced a write; their listeners add
    them (firmware/mqtt/service.py), so it outlives a bridge.

    Per object the bridge keeps two numbers (`sent`, `hashes`: arrays, 8 B per object), not
    the last published text: unchanged JSON is recognised by its hash (two different texts with
    the same 30-bit hash, chance 1e-9 per change, would delay that object to its next change).
    Configs are read when they announced a write, else all of them every _CONFIG_POLL_MS."""

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
        self.discovery = None  # (device_id, discovery_prefix) when Home Assistant discovery is on
        self._announce = None   # when the discovery configs are due (ticks_ms), or None
        self.paths = []
        self.sent = self.hashes = None
        self._configs_ms = None  # when every config was last read (None: due)
        self.rejected = 0

    def setup(self):
        """Learn the registry's paths (after every subsystem registered) and subscribe to the
        _update topics of the writable ones."""
        call_once(_COLD, "setup", self)

    def on_connect(self):
        for i in range(len(self.paths)):  # nothing published on this connection yet
            self.sent[i] = self.hashes[i] = _UNSENT
        self._announce = self.clock.ticks_ms() if self.discovery is not None else None
        self.client.publish(self.prefix + "/availability", "online", True, 1, COMMAND)

    def on_message(self, topic, payload, retain):
        """A message on <prefix>/<path>_update: a write. payload None: it was too large."""
        call_once(_COLD, "write", self, topic, payload, retain)

    def on_oversize(self, topic, retain=False):
        self.on_message(topic, None, retain)

    def on_drop(self, topic):
        """The client dropped a queued state: forget it was sent, so the next scan sends it."""
        p = self.prefix
        if topic.startswith(p + "/") and topic[len(p) + 1:] in self.paths:
            self.hashes[self.paths.index(topic[len(p) + 1:])] = _UNSENT

    # ---- publishing ----

    def scan(self):
        """Publish every object that changed and whose interval has passed."""
        if not self.client.connected:
            return  # on_connect re-publishes everything anyway
        now = self.clock.ticks_ms()
        configs = self._configs_due(now)
        for i in range(len(self.paths)):
            self.poll(i, now, configs)

    def _configs_due(self, now_ms):
        """Whether a pass starting now reads the configs that announced no write too."""
        last = self._configs_ms
        if last is None or time.ticks_diff(now_ms, last) >= _CONFIG_POLL_MS:
            self._configs_ms = now_ms
            return True
        return False

    def poll(self, i, ms, configs):
        """Object i at time ms: read it when due, publish it when its JSON changed."""
        sent = self.sent[i]
        if sent != _UNSENT and (ms - sent) & _MS_MASK < self.interval_ms:
            return
        path = self.paths[i]
        obj = self.registry.get_object(path)
        if sent != _UNSENT and not configs and hasattr(obj, "subscribe") \
                and obj not in self.dirty:
            return  # a config that announced no write: read now and then only
        self.dirty.discard(obj)
        try:
            text = json.dumps(self.registry.read(path))  # an object or a registry tuple
        except Exception as x:  # noqa: BLE001 - one broken object must not stop the rest
            if sent == _UNSENT:
                self.log("mqtt: cannot read %s: %r" % (path, x))
                self.sent[i] = ms & _MS_MASK
            return
        h = binascii.crc32(text) & _HASH_MASK
        if h != self.hashes[i] and self.client.publish(self.prefix + "/" + path, text, True, 0,
                                                       STATE):
            self.hashes[i] = h
            self.sent[i] = ms & _MS_MASK

    async def run(self):
        # One object per asyncio turn: serialising all of them at once (~15 ms on the ESP32 for
        # the 48 objects of make sim) would delay the control loop's wake-up by that much. And
        # nothing is read while more than _BACKLOG messages wait to be sent (a slow or paused
        # broker): the queue never holds more than a few payloads; they are read again, fresh,
        # once it drains.
        c = self.client
        scan_ms = max(_MIN_SCAN_MS, self.interval_ms // 4)
        while True:
            due = self._announce
            if due is not None and c.connected and time.ticks_diff(self.clock.ticks_ms(),
                                                                   due) >= 0:
                self._announce = None
                await self.announce()
            configs = self._configs_due(self.clock.ticks_ms())
            for i in range(len(self.paths)):
                while c.connected and c.queued() > _BACKLOG:
                    await self.clock.sleep_ms(_MIN_SCAN_MS)
                if not c.connected:
                    break  # on_connect re-publishes everything anyway
                self.poll(i, self.clock.ticks_ms(), configs)
                await asyncio.sleep_ms(0)
            await self.clock.sleep_ms(scan_ms)

    async def announce(self, remove=False):
        """Publish (or remove) the Home Assistant discovery configs, one at a time: the next
        one is made when the client has sent (and the broker acknowledged) everything before,
        so the module's code and one payload are all this holds at once (~0.6 KB each, while
        the module alone is ~4 KB: it runs when the heap is fullest, right after a connect).
        A coroutine of its own: nothing of the discovery module stays referenced from the
        long-lived frame of run() (unload() must free it)."""
        c = self.client
        try:
            from firmware.mqtt import discovery
            for topic, payload in discovery.entries(self.discovery[0], self.prefix,
                                                    self.discovery[1], self.read_only, remove):
                while c.connected and c.queued():
                    await self.clock.sleep_ms(_MIN_SCAN_MS)
                c.publish(topic, payload, True, 1, COMMAND)
        except Exception as e:  # noqa: BLE001 - e.g. no heap to import it: states go on
            self.log("mqtt: discovery failed: %r" % (e,))
            if not remove:
                self._announce = time.ticks_add(self.clock.ticks_ms(), _ANNOUNCE_RETRY_MS)
        unload("discovery")

    async def stop(self, config):
        """Stop the client; first remove what the new config (the mqtt/config values from now
        on) no longer publishes."""
        await call_once(_COLD, "stop", self, config)


def start(service, v):
    """Client and bridge for the mqtt/config values `v` of the MqttService `service`: returns
    the bridge (its client in .client) and the tasks running them."""
    return call_once(_COLD, "start", service, v)
