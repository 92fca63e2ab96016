"""The MQTT subsystem's heap diet (docs/mqtt.md "Heap"): client and bridge are imported only
while MQTT is enabled and dropped when it is switched off, Home Assistant discovery only while
its configs are published; the discovery payloads are exactly those of the implementation
before the diet (golden file, recorded from it)."""
import json
from pathlib import Path

from mp import run_mp

GOLDEN = Path(__file__).with_name("mqtt_discovery_golden.json")
_MODS = "[m[14:] for m in sorted(sys.modules) if m.startswith('firmware.mqtt.')]"
# What the MQTT service needs of the app: a clock (set by each test), a registry, no store/board.
_APP = """import asyncio, sys
from firmware.clock import Clock
from firmware.api.registry import Registry
from firmware.mqtt.service import install

class App:
    pass
app = App()
app.registry = Registry()
app.store = None
app.board = None
"""


def test_discovery_payloads_unchanged():
    out = run_mp("""
import json
from firmware.mqtt import discovery
for ro in (False, True):
    msgs = list(discovery.entries("a1b2c3d4e5f6", "pvcc/a1b2c3d4e5f6", "homeassistant", ro))
    msgs += discovery.entries("a1b2c3d4e5f6", "pvcc/a1b2c3d4e5f6", "homeassistant", ro, True)
    print(json.dumps([[t, json.loads(p) if p else p] for t, p in msgs]))
""").splitlines()
    golden = json.loads(GOLDEN.read_text())
    assert json.loads(out[0]) == golden["read_write"]
    assert json.loads(out[1]) == golden["read_only"]


def test_client_and_bridge_loaded_only_while_enabled_discovery_only_while_published():
    out = run_mp("""
%(app)sapp.clock = Clock(10)
from firmware.mqtt import service
class State:
    def to_dict(self):
        return {"v": 1}
app.registry.add("a/state", State())
coros = install(app)
print(%(mods)s)

class Stub:  # a connected client that records what is published
    connected = True
    def __init__(self):
        self.pubs = []
    def queued(self):
        return 0
    def publish(self, topic, payload, retain=False, qos=0, kind=1):
        self.pubs.append((topic, payload, retain, qos))

async def main():
    asyncio.create_task(coros[0])
    await asyncio.sleep_ms(20)
    # enabled (no broker listens on port 1: the client retries, that is all)
    app.registry.write("mqtt/config", '{"enable": true, "broker_host": "127.0.0.1", '
                       '"broker_port": 1, "discovery": true}')
    await asyncio.sleep_ms(50)
    print(%(mods)s, app.mqtt.client is not None)
    b = app.mqtt.bridge
    c = b.client
    b.client = stub = Stub()
    await b.announce()
    print(%(mods)s, len(stub.pubs), stub.pubs[0][0], stub.pubs[0][2:], stub.pubs[-1][1] == "")
    b.client = c
    b = c = None
    app.registry.write("mqtt/config", '{"enable": false}')
    await asyncio.sleep_ms(50)
    print(%(mods)s, app.mqtt.client, app.mqtt.bridge)

asyncio.run(main())
""" % {"mods": _MODS, "app": _APP}).splitlines()
    out = [line for line in out if line.startswith("[")]  # not the client's log
    assert out[0] == "['service']"
    assert out[1] == "['bridge', 'client', 'service'] True"
    assert out[2] == ("['bridge', 'client', 'service'] 11 "
                      "homeassistant/select/000000/charge_mode/config (True, 1) True")
    assert out[3] == "['service'] None None"


def test_a_client_that_cannot_start_is_tried_again():
    out = run_mp("""
%(app)sapp.clock = Clock(100)
coros = install(app)
app.mqtt.log = lambda m: print("LOG", m)
from firmware.mqtt import bridge
def no_heap(svc, v):
    raise MemoryError("no room")
bridge.start = no_heap   # until unloaded: the next import is the real module
bridge = None

async def main():
    asyncio.create_task(coros[0])
    app.registry.write("mqtt/config", '{"enable": true, "broker_host": "127.0.0.1", '
                       '"broker_port": 1}')
    await asyncio.sleep_ms(50)
    print("ST", app.mqtt.to_dict()["connected"], app.mqtt.bridge, %(mods)s)
    await asyncio.sleep_ms(150)    # 15 s on this clock: not yet
    print("ST", app.mqtt.bridge is not None, %(mods)s)
    await asyncio.sleep_ms(250)    # 40 s: tried again
    print("ST", app.mqtt.bridge is not None, %(mods)s)

asyncio.run(main())
""" % {"mods": _MODS, "app": _APP}).splitlines()
    assert "LOG mqtt: cannot start: MemoryError('no room',)" in out
    sts = [line for line in out if line.startswith("ST")]
    assert sts == ["ST False None ['service']", "ST False ['service']",
                   "ST True ['bridge', 'client', 'service']"]
