"""The registry <-> MQTT bridge and Home Assistant discovery (firmware/mqtt/), installed with
install(app) on a small stand-in app, against a real mosquitto and paho-mqtt."""
import json
import time

import jinja2
import pytest

from mqtt_support import Broker, MpProc, Observer

PFX = "test/dev"

# A stand-in for firmware/app.py: a few objects shaped like the power manager's, the MQTT
# subsystem installed as app.py does it, and a 100 ms "control loop" that changes the state.
_APP = """
import asyncio, json
from firmware.clock import Clock
from firmware.api.registry import Registry
from firmware.api.store import Store
from firmware.api.config import ConfigObject, Field, INT
from firmware.mqtt import service

store = Store(%(dir)r)
store.save("mqtt/config", %(mqtt)r)

class LowLevel:
    def __init__(self):
        self.n = 0
    def to_dict(self):
        return {"power_at_meter": -1234.5, "charge_manager_available_current": 16000,
                "charge_manager_allocated_current": 6000 + self.n // %(slow)d,
                "is_3phase": True, "switching_state": 0, "charging_blocked": 1}

class PmState:
    def to_dict(self):
        return {"config_error_flags": 4, "external_control": 1}

class App:
    pass
app = App()
app.clock = Clock()
app.registry = Registry()
app.store = store
app.configs = {}
app.board = None
lls = app.registry.add("power_manager/low_level_state", LowLevel())
app.registry.add("power_manager/state", PmState())
app.registry.add("power_manager/charge_mode",
                 ConfigObject("power_manager/charge_mode", [Field("mode", INT, 0, choices=[0, 1, 2, 3])]))
app.registry.add("power_manager/external_control",
                 ConfigObject("power_manager/external_control", [Field("phases_wanted", INT, 0, choices=[0, 1, 3])]))
coros = service.install(app)

async def control_loop():
    while True:
        await app.clock.sleep_ms(100)
        lls.n += 1
        c = app.mqtt.client
        if c is not None and c.connects != getattr(app, "seen", 0):
            app.seen = c.connects
            print("CONN", app.seen)

async def main():
    for c in coros:
        asyncio.create_task(c)
    await control_loop()
asyncio.run(main())
"""


def app_proc(tmp_path, port, slow=1, **mqtt):
    cfg = {"enable": True, "broker_host": "127.0.0.1", "broker_port": port, "prefix": PFX,
           "password": "hunter2", "discovery": True}
    cfg.update(mqtt)
    return MpProc(_APP % dict(dir=str(tmp_path), mqtt=cfg, slow=slow))


@pytest.fixture
def broker():
    b = Broker().start()
    yield b
    b.close()


def _json(m):
    return json.loads(m[1])


def test_states_published_retained_and_password_never_readable(tmp_path, broker):
    obs = Observer(broker.port, [PFX + "/#"])
    mp = app_proc(tmp_path, broker.port, slow=1)
    try:
        assert obs.wait_topic(PFX + "/availability")[1] == b"online"
        for path in ("power_manager/low_level_state", "power_manager/state",
                     "power_manager/charge_mode", "power_manager/external_control",
                     "mqtt/config", "mqtt/state"):
            obs.wait_logged(PFX + "/" + path)
        cfg = [m for m in obs.log if m[0] == PFX + "/mqtt/config"][-1]
        assert _json(cfg)["password"] is None and _json(cfg)["broker_port"] == broker.port
        assert all(b"hunter2" not in m[1] for m in obs.log)
        # A late subscriber gets the retained values at once.
        late = Observer(broker.port, [PFX + "/power_manager/charge_mode"])
        m = late.wait_topic(PFX + "/power_manager/charge_mode")
        assert m[2] is True and _json(m) == {"mode": 0}
        late.close()
        # The state changes every 100 ms; it is published at most once per interval (1 s).
        obs.drain()
        t0 = time.monotonic()
        first = obs.wait_topic(PFX + "/power_manager/low_level_state")
        n = 1
        while time.monotonic() - t0 < 3.2:
            try:
                obs.wait_topic(PFX + "/power_manager/low_level_state", timeout=0.5)
                n += 1
            except AssertionError:
                pass
        # Upper bound: the rate limit. Lower bound loose: a stalled host delays, never adds.
        assert 2 <= n <= 5, n
        assert first[2] is False  # live messages to a subscriber arrive without the retain flag
    finally:
        mp.close()
        obs.close()


def test_writes_take_effect_and_bad_ones_are_rejected_safely(tmp_path, broker):
    obs = Observer(broker.port, [PFX + "/#"])
    mp = app_proc(tmp_path, broker.port, slow=10**6)
    mode = PFX + "/power_manager/charge_mode"
    err = PFX + "/mqtt/error"
    try:
        obs.wait_logged(mode, payload_pred=lambda p: json.loads(p) == {"mode": 0})
        obs.publish(mode + "_update", b"2")
        obs.wait_topic(mode, payload_pred=lambda p: json.loads(p) == {"mode": 2})
        obs.publish(mode + "_update", b'{"mode": 3}', qos=0)
        obs.wait_topic(mode, payload_pred=lambda p: json.loads(p) == {"mode": 3})

        bad = [(b'{"mode": ', 400, "Failed to parse JSON"),
               (b'{"mode": "2"}', 400, "must be of type int"),
               (b'{"mode": 7}', 400, "invalid value 7"),
               (b'{"mood": 1}', 400, "unknown key 'mood'"),
               (b'{"mode": 1}' + b" " * 5000, 413, "Payload too large"),   # read, then refused
               (b'"' + b"x" * 300000 + b'"', 413, "Payload too large")]    # never read whole
        for payload, status, text in bad:
            obs.publish(mode + "_update", payload)
            m = obs.wait_topic(err)
            e = _json(m)
            assert (e["topic"], e["status"]) == (mode + "_update", status) and text in e["error"], e
            assert m[2] is False
        # An empty command is ignored: no change, no error message. (A retained one is applied
        # when published, the broker forwarding it as any other; its replays at a reconnect are
        # ignored: test_retained_commands_present_at_connect_are_ignored.)
        obs.publish(mode + "_update", b"")
        obs.publish(PFX + "/power_manager/external_control_update", b"3")
        obs.wait_topic(PFX + "/power_manager/external_control",
                       payload_pred=lambda p: json.loads(p) == {"phases_wanted": 3})
        assert not [m for m in obs.log if m[0] == err][len(bad):]
        assert [_json(m) for m in obs.log if m[0] == mode][-1] == {"mode": 3}
        # Writes to a read-only object are not subscribed: nothing happens at all.
        obs.publish(PFX + "/power_manager/state_update", b'{"external_control": 0}')
        # The client never broke: still the first connection.
        time.sleep(0.3)
        assert mp.wait_line(lambda s: s.startswith("CONN")) == "CONN 1"
        assert "CONN 2" not in "".join(mp.out) and "Traceback" not in "".join(mp.out)
        # mqtt/config through MQTT: same validation, and the password stays write-only.
        obs.publish(PFX + "/mqtt/config_update", b'{"interval": 0}')
        assert "below the minimum 1" in _json(obs.wait_topic(err))["error"]
    finally:
        mp.close()
        obs.close()


def test_retained_commands_present_at_connect_are_ignored(tmp_path, broker):
    # Retained messages on _update topics (garbage, a valid write, one too large to hold) are
    # replayed by the broker with the retain flag at every (re)connect: none of them may change
    # anything or be answered on the error topic, the oversized one included.
    pub = Observer(broker.port, ["unused"])
    pub.publish(PFX + "/power_manager/charge_mode_update", b"x" * 300000, retain=True)
    pub.publish(PFX + "/power_manager/external_control_update", b'{"phases_wanted": ', retain=True)
    pub.publish(PFX + "/mqtt/config_update", b'{"interval": 5}', retain=True)
    pub.close()
    obs = Observer(broker.port, [PFX + "/#"])
    mp = app_proc(tmp_path, broker.port, slow=10**6, discovery=False)
    try:
        mp.wait_line(lambda s: s == "CONN 1")
        obs.wait_logged(PFX + "/power_manager/charge_mode")
        time.sleep(1.5)
        out = "".join(mp.out)
        assert out.count("ignored retained message") == 3, out
        assert not [m for m in obs.log if m[0] == PFX + "/mqtt/error"], out
        assert _json([m for m in obs.log if m[0] == PFX + "/mqtt/config"][-1])["interval"] == 1
        assert [_json(m) for m in obs.log if m[0] == PFX + "/power_manager/charge_mode"] == \
            [{"mode": 0}]
    finally:
        mp.close()
        obs.close()


def test_read_only_ignores_writes(tmp_path, broker):
    obs = Observer(broker.port, [PFX + "/#"])
    mp = app_proc(tmp_path, broker.port, read_only=True, discovery=False)
    mode = PFX + "/power_manager/charge_mode"
    try:
        obs.wait_logged(mode)
        obs.publish(mode + "_update", b"2")
        obs.publish(PFX + "/mqtt/config_update", b'{"read_only": false}')
        time.sleep(1.0)
        assert [_json(m) for m in obs.log if m[0] == mode] == [{"mode": 0}]
        assert _json([m for m in obs.log if m[0] == PFX + "/mqtt/config"][-1])["read_only"]
    finally:
        mp.close()
        obs.close()


def test_broker_restart_republishes_everything(tmp_path, broker):
    mp = app_proc(tmp_path, broker.port, slow=10**6)
    try:
        mp.wait_line(lambda s: s == "CONN 1")
        broker.stop()
        time.sleep(0.3)
        broker.start()  # no persistence: every retained topic is gone
        obs = Observer(broker.port, [PFX + "/#"])
        mp.wait_line(lambda s: s == "CONN 2", timeout=15)
        # Nothing changed, yet the fresh broker gets every object again, retained.
        paths = ("power_manager/low_level_state", "power_manager/charge_mode", "mqtt/config")
        for path in paths:
            obs.wait_logged(PFX + "/" + path)
        late = Observer(broker.port, [PFX + "/#"])
        for path in paths:
            assert late.wait_logged(PFX + "/" + path)[2] is True
        assert late.wait_logged(PFX + "/availability")[1] == b"online"
        late.close()
        obs.publish(PFX + "/power_manager/charge_mode_update", b"1")
        obs.wait_topic(PFX + "/power_manager/charge_mode",
                       payload_pred=lambda p: json.loads(p) == {"mode": 1})
        obs.close()
    finally:
        mp.close()


# ---- Home Assistant discovery, checked the way Home Assistant consumes it ----

def _ha_env():
    env = jinja2.Environment()
    env.filters["bitwise_and"] = lambda v, m: int(v) & m  # Home Assistant's template filters
    env.filters["int"] = lambda v: int(v)
    return env


def _render(tpl, **vars_):
    return _ha_env().from_string(tpl).render(**vars_)


class HaConsumer:
    """What Home Assistant's MQTT integration does with discovery: entities from retained
    <discovery_prefix>/<component>/<node>/<object>/config messages; empty payload = removed."""

    REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
                "select": {"command_topic", "options"}}

    def __init__(self, port):
        self.obs = Observer(port, ["homeassistant/#", PFX + "/#"])
        self.entities = {}
        self._done = 0

    def pump_until(self, cond, timeout=10.0):
        """Apply discovery messages as they arrive until cond(entities) holds."""
        end = time.monotonic() + timeout
        while True:
            self.pump(0.05)
            if cond(self.entities):
                return
            assert time.monotonic() < end, sorted(self.entities)

    def pump(self, seconds=1.0):
        """Apply every discovery message that arrived so far (and within `seconds`)."""
        time.sleep(seconds)
        log = list(self.obs.log)
        for m in log[self._done:]:
            if not m[0].startswith("homeassistant/"):
                continue
            parts = m[0].split("/")
            assert len(parts) == 5 and parts[4] == "config", m[0]
            if m[1]:
                cfg = json.loads(m[1])
                missing = self.REQUIRED[parts[1]] - set(cfg)
                assert not missing, (m[0], missing)
                self.entities[m[0]] = (parts[1], cfg)
            else:
                self.entities.pop(m[0], None)
        self._done = len(log)

    def state(self, topic):
        return [m for m in self.obs.log if m[0] == topic][-1][1]


def test_home_assistant_discovery_entities_control_and_removal(tmp_path, broker):
    ha = HaConsumer(broker.port)
    mp = app_proc(tmp_path, broker.port, slow=10**6)
    try:
        ha.obs.wait_logged(PFX + "/power_manager/low_level_state")
        ha.obs.wait_logged(PFX + "/power_manager/external_control")
        ha.pump_until(lambda e: len(e) >= 10)
        ha.pump(0.3)  # nothing more comes
        ents = {cfg["unique_id"]: (comp, cfg) for comp, cfg in ha.entities.values()}
        assert len(ents) == len(ha.entities) >= 10
        devices = {json.dumps(cfg["device"], sort_keys=True) for _, cfg in ents.values()}
        assert len(devices) == 1  # one device groups them all
        dev = json.loads(devices.pop())
        assert dev["identifiers"] and dev["name"]
        for comp, cfg in ents.values():
            assert cfg["availability_topic"] == PFX + "/availability"
            assert cfg["origin"]["name"]
            assert cfg["unique_id"].startswith(dev["identifiers"][0])

        def value(object_id):
            comp, cfg = ents[dev["identifiers"][0] + "_" + object_id]
            payload = ha.state(cfg["state_topic"])
            return _render(cfg["value_template"], value_json=json.loads(payload)).strip()

        assert value("grid_power") == "-1234.0" or value("grid_power") == "-1234"
        assert value("available_current") == "16000"
        assert value("allocated_current") == "6000"
        assert value("active_phases") == "3"
        assert value("switching_state") == "0"
        assert value("external_phase_request") == "0"
        assert value("config_errors") == "4"
        assert value("config_error") == "ON"
        assert value("meter_stale") == "ON"
        assert value("charge_mode") == "Fast"
        comp, sel = ents[dev["identifiers"][0] + "_charge_mode"]
        assert comp == "select" and sel["options"] == ["Fast", "Off", "PV", "Min + PV"]

        # Home Assistant selects "PV": renders the command template, publishes it.
        ha.obs.publish(sel["command_topic"], _render(sel["command_template"], value="PV"))
        ha.obs.wait_topic(sel["state_topic"], payload_pred=lambda p: json.loads(p) == {"mode": 2})
        assert value("charge_mode") == "PV"

        # Discovery off: every entity goes (empty retained configs), MQTT itself stays.
        ha.obs.publish(PFX + "/mqtt/config_update", b'{"discovery": false}')
        ha.pump_until(lambda e: not e)
        late = HaConsumer(broker.port)  # nothing retained is left for a restarted HA either
        late.pump(0.3)
        assert late.entities == {}
        # Discovery on again, then MQTT off: entities back, then removed, and offline.
        ha.obs.publish(PFX + "/mqtt/config_update", b'{"discovery": true}')
        ha.pump_until(lambda e: len(e) == len(ents))
        ha.obs.publish(PFX + "/mqtt/config_update", b'{"enable": false}')
        ha.obs.wait_logged(PFX + "/availability", payload_pred=lambda p: p == b"offline")
        ha.pump_until(lambda e: not e)
        late.obs.close()
    finally:
        mp.close()
        ha.obs.close()
