"""Bridge timing and routing on a ManualClock with a recording stand-in client (no sockets)."""
import json

from mp import run_mp

_SETUP = """
import json
from firmware.clock import ManualClock
from firmware.api.registry import Registry
from firmware.api.config import ConfigObject, Field, INT
from firmware.mqtt.bridge import Bridge

class Client:
    connected = True
    def __init__(self):
        self.pubs = []
        self.subs = []
    def publish(self, topic, payload, retain=False, qos=0, kind=1):
        self.pubs.append((topic, payload, retain, qos, kind))
        return True
    def subscribe(self, topic, qos=1):
        self.subs.append((topic, qos))

class State:
    v = 0
    def to_dict(self):
        return {"v": self.v}

clock = ManualClock()
reg = Registry()
st = reg.add("a/state", State())
cfg = reg.add("a/config", ConfigObject("a/config", [Field("x", INT, 1, 0, 9)]))
c = Client()
b = Bridge(clock, reg, c, "p", 1000, False, log=lambda m: None)
cfg.subscribe(lambda o: b.dirty.add("a/config"))
b.setup()
def take():
    out = [(t, p) for t, p, r, q, k in c.pubs]
    c.pubs = []
    return out
"""


def test_interval_change_detection_and_writes():
    out = run_mp(_SETUP + """
print(c.subs)
b.on_connect()
b.scan()
print(take())                    # availability, then every object once
st.v = 1
clock.advance(250); b.scan(); print(take())   # changed, but within the interval
clock.advance(750); b.scan(); print(take())   # interval over: published
clock.advance(1000); b.scan(); print(take())  # unchanged: nothing
for n in range(20):                            # changing every 100 ms: once per second
    st.v += 1
    clock.advance(100)
    b.scan()
print(len([p for p in take() if p[0] == "p/a/state"]))
b.on_message("p/a/config_update", b"7", False)
clock.advance(1000); b.scan(); print(take())
b.on_message("p/a/config_update", b"8", True)    # retained: ignored
b.on_message("p/a/config_update", b"", False)    # empty: ignored
b.on_message("p/a/config_update", b"[", False)
b.on_message("p/a/state_update", b"1", False)    # read-only object
b.on_message("q/a/config_update", b"1", False)   # another prefix: not ours
b.on_message("p/_update", b"1", False)
print(json.dumps([[t, json.loads(p)] for t, p in take()]), cfg["x"])
b.on_oversize("p/a/config_update")
print(take())
b.on_connect(); b.scan()                          # reconnect: everything again
print(len(take()))
""").splitlines()
    assert out[0] == "[('p/a/config_update', 1)]"
    assert out[1] == ("[('p/availability', 'online'), ('p/a/config', '{\"x\": 1}'), "
                      "('p/a/state', '{\"v\": 0}')]")
    assert out[2] == "[]"
    assert out[3] == "[('p/a/state', '{\"v\": 1}')]"
    assert out[4] == "[]"
    assert out[5] == "2"
    assert out[6] == "[('p/a/config', '{\"x\": 7}'), ('p/a/state', '{\"v\": 21}')]"
    errors, x = out[7].rsplit(" ", 1)
    assert x == "7"  # none of the bad writes changed anything
    assert json.loads(errors) == [
        ["p/mqtt/error", {"status": 400, "topic": "p/a/config_update",
                          "error": "Failed to parse JSON payload"}],
        ["p/mqtt/error", {"status": 405, "topic": "p/a/state_update",
                          "error": "a/state is read-only"}]]
    assert "413" in out[8] and "Payload too large" in out[8]
    assert out[9] == "3"


def test_states_dropped_by_a_full_queue_are_published_again():
    out = run_mp("""
from firmware.clock import ManualClock
from firmware.api.registry import Registry
from firmware.mqtt.bridge import Bridge
from firmware.mqtt.client import MQTTClient

class State:
    def __init__(self, v):
        self.v = v
    def to_dict(self):
        return {"v": self.v}

clock = ManualClock()
reg = Registry()
for i in range(4):
    reg.add("s/%d" % i, State(i))
c = MQTTClient(clock, "127.0.0.1", queue_len=2, log=lambda m: None)
c.connected = True  # no socket: we look at the queue only
b = Bridge(clock, reg, c, "p", 1000, True, log=lambda m: None)
c.on_drop = b.on_drop
b.setup()
b.scan()
print([e[0] for e in c._queue], c.dropped)
c._queue = []     # the transmit task sent them
clock.advance(1000)
b.scan()          # nothing changed, but s/0 and s/1 never went out
print([e[0] for e in c._queue])
c._queue = []
clock.advance(1000)
b.scan()
print([e[0] for e in c._queue])
""").splitlines()
    assert out == ["['p/s/2', 'p/s/3'] 2", "['p/s/0', 'p/s/1']", "[]"]
