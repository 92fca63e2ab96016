# The MQTT subsystem: the `mqtt/config` object, a read-only `mqtt/state`, and one task that runs
# client + bridge (+ Home Assistant discovery) while MQTT is enabled and restarts them when the
# config changes. install(app) is the composition root's entry.
#
# Heap: only this module and the config object stay loaded. The client and the bridge
# (firmware/mqtt/bridge.py) are imported when MQTT is enabled and unloaded when it is switched
# off; Home Assistant discovery only while its configs are published.
import asyncio
import gc

from micropython import const

from firmware import call_once
from firmware.api.config import ConfigObject
from firmware.mqtt import unload

_RETRY_S = const(30)  # a client that could not start (no heap) is tried again after this
_COLD = "firmware.mqtt.cold"  # install() and the config rule: imported for the call, dropped


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


def _check(v):
    """mqtt/config's cross-field rule (cold.py: runs on a write only)."""
    return call_once(_COLD, "config_error", v)


class MqttService:
    """Also the mqtt/state object: connection status for the UI and for users' scripts. Nothing
    in it changes by publishing itself (no queue length), or it would be re-sent every
    interval."""

    def __init__(self, clock, registry, config, device_id, log=None):
        self.clock = clock
        self.registry = registry
        self.config = config
        self.device_id = device_id
        self.log = log or print
        self.client = None
        self.bridge = None
        self.dirty = None  # config objects that announced a write (see Bridge); set at 1st start
        self._tasks = ()   # the running client's and bridge's
        self._changed = asyncio.Event()
        config.subscribe(lambda e: self._changed.set())

    def to_dict(self):
        c = self.client
        return {
            "connected": bool(c and c.connected),
            "connects": c.connects if c else 0,
            "last_error": (c.last_error if c else None),
            "dropped": c.dropped if c else 0,
            "rejected_writes": self.bridge.rejected if self.bridge else 0,
        }

    async def run(self):
        while True:
            self._changed.clear()  # a change from here on starts another round
            # In a coroutine of its own: what it touched (bridge, tasks, modules) must not stay
            # referenced from this frame, which lives forever (see unload()).
            await self._restart()
            if self.bridge is None and self.config.values["enable"]:
                # Could not start (no heap): again in a while, or at the next config write.
                for _ in range(_RETRY_S):
                    if self._changed.is_set():
                        break
                    await self.clock.sleep_ms(1000)
            else:
                await self._changed.wait()

    async def _restart(self):
        """Stop the running client and bridge (if any), start them again if enabled."""
        if self.bridge is not None:
            await self.bridge.stop(self.config.values)
            for t in self._tasks:
                t.cancel()
            self._tasks = ()
            self.client = self.bridge = None
        v = dict(self.config.values)
        if v["enable"]:
            if self.dirty is None:
                # Configs announce their writes: they are published at once instead of being
                # polled. (Listeners cannot be removed: registered once.)
                self.dirty = set()
                add = self.dirty.add  # one listener object for all
                reg = self.registry
                for path in reg.paths():
                    obj = reg.get_object(path)
                    if hasattr(obj, "subscribe"):
                        obj.subscribe(add)
            try:
                gc.collect()  # the import wants blocks of up to ~2 KB
                from firmware.mqtt import bridge
                self.bridge, self._tasks = bridge.start(self, v)
                self.client = self.bridge.client
                return
            except Exception as e:  # noqa: BLE001 - e.g. no heap to import the client
                self.log("mqtt: cannot start: %r" % (e,))
        unload("bridge", "client")


def install(app):
    """Register mqtt/config and mqtt/state; return the coroutine running MQTT. (Built by
    cold.py: code that runs once at boot.)"""
    return call_once(_COLD, "install", app)
