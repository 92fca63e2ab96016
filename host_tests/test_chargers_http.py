"""The vendor-HTTP-API charger backend against a small CPython server emulating the charger."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mp import run_mp


class FakeWarp:
    """evse/state, evse/external_current, evse/external_enabled, evse/control_pilot_disconnect,
    meters/0/value_ids and meters/0/values, as the vendor documents them: each of the three is a
    state, written through its command `<state>_update` (docs/chargers-audit.md). `fw` is the
    charger firmware's generation: 2 routes a PUT to the state path on to its _update command,
    1 answers it with the state and changes nothing (the vendor's http.cpp of either)."""

    def __init__(self, with_meter=True):
        self.state = {"iec61851_state": 2, "charger_state": 3, "contactor_state": 3,
                      "contactor_error": 0, "allowed_charging_current": 16000,
                      "error_state": 0, "lock_state": 0}
        self.external_current = 32000
        self.external_enabled = False
        self.cp_disconnected = False
        self.with_meter = with_meter
        self.value_ids = [1, 2, 3, 14, 18, 22, 74]   # as an API meter declares them
        self.values = [230.1, 231.0, 229.5, 7.25, 7.1, -7.0, 4900.0]
        self.log = []
        self.mode = "ok"   # "garbage" or "silent"
        self.cp_feature = True
        self.fw = 2

    def external_current_doc(self):
        return {"current": self.external_current}


def _serve(fake):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, doc):
            body = b"" if doc is None else json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            fake.log.append(("GET", self.path, None))
            if fake.mode == "garbage":
                self.wfile.write(b"\x00\x01garbage\r\n\r\n")
                return
            if fake.mode == "silent":
                threading.Event().wait(2)
                return
            if self.path == "/evse/state":
                return self._send(200, fake.state)
            if self.path == "/meters/0/value_ids" and fake.with_meter:
                return self._send(200, fake.value_ids)
            if self.path == "/meters/0/values" and fake.with_meter:
                return self._send(200, fake.values)
            self._send(404, None)

        def do_PUT(self):
            n = int(self.headers.get("Content-Length", 0))
            doc = json.loads(self.rfile.read(n) or b"null")
            fake.log.append(("PUT", self.path, doc))
            states = {"/evse/external_current": fake.external_current_doc,
                      "/evse/external_enabled": lambda: {"enabled": fake.external_enabled}}
            if fake.cp_feature:
                states["/evse/control_pilot_disconnect"] = \
                    lambda: {"disconnect": fake.cp_disconnected}
            path = self.path
            if path in states:
                if fake.fw == 1:                 # a state: answered, nothing written
                    return self._send(200, states[path]())
                path += "_update"                # firmware 2: routed to the command
            if path == "/evse/external_current_update":
                c = doc.get("current")
                if not (c == 0 or 6000 <= c <= 32000):
                    return self._send(400, None)
                fake.external_current = c
                fake.state["allowed_charging_current"] = min(c, 32000)
            elif path == "/evse/external_enabled_update":
                fake.external_enabled = doc["enabled"]
            elif path == "/evse/control_pilot_disconnect_update" and fake.cp_feature:
                fake.cp_disconnected = doc["disconnect"]
            else:
                return self._send(404, None)
            self._send(200, None)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def warp():
    fake = FakeWarp()
    srv = _serve(fake)
    yield fake, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


_PRE = """
import asyncio, json
from firmware.clock import ManualClock
from firmware.chargers.http_evse import HttpEvseCharger
clock = ManualClock(1000)
ch = HttpEvseCharger('wb', '127.0.0.1:%d', max_ma=20000, timeout_ms=%d)
async def poll():
    try:
        await ch.poll_once(clock.ticks_ms())
        return 'ok'
    except Exception as e:
        ch.failed(clock.ticks_ms(), repr(e))
        return type(e).__name__
def rnd():
    return asyncio.run(poll())
def show(tag):
    print(tag, json.dumps([ch.reachable, ch.vehicle_connected, ch.charging, ch.phase_currents_ma, ch.applied_ma, ch.has_meter]))
"""


def test_setpoint_state_currents_and_cp(warp):
    fake, port = warp
    out = run_mp(_PRE % (port, 2000) + """
ch.set_current(10000)
print(rnd()); show('a')
ch.set_current(25000)      # above the charger's max: clamped to 20 A
ch.set_cp_disconnect(True)
print(rnd()); show('b')
ch.set_current(3000)       # below 6 A: the EVSE takes 0 (pause)
ch.set_cp_disconnect(False)
print(rnd()); show('c')
""")
    lines = out.splitlines()
    assert lines[0] == "ok"
    a = json.loads(lines[1][2:])
    assert a == [True, True, True, [7250, 7100, 7000], 10000, True]
    assert fake.external_enabled is True
    b = json.loads(lines[3][2:])
    assert b[4] == 20000
    puts = [(p, d) for m, p, d in fake.log if m == "PUT"]
    assert ("/evse/control_pilot_disconnect_update", {"disconnect": True}) in puts
    assert puts[-2:] == [("/evse/external_current_update", {"current": 0}),
                         ("/evse/control_pilot_disconnect_update", {"disconnect": False})]
    assert fake.external_current == 0 and fake.cp_disconnected is False


def test_no_meter_estimates_and_vehicle_states(warp):
    fake, port = warp
    fake.with_meter = False
    out = run_mp(_PRE % (port, 2000) + """
ch.set_current(8000)
print(rnd()); show('a')
""")
    fake.state["charger_state"] = 0
    fake.state["iec61851_state"] = 0
    out2 = run_mp(_PRE % (port, 2000) + "ch.set_current(8000)\nprint(rnd()); show('b')")
    a = json.loads(out.splitlines()[1][2:])
    assert a == [True, True, True, [8000, 8000, 8000], 8000, False]
    b = json.loads(out2.splitlines()[1][2:])
    assert b[:4] == [True, False, False, [0, 0, 0]]


def test_garbage_timeout_and_dead_peer_make_it_unreachable(warp):
    fake, port = warp
    fake.mode = "garbage"
    out = run_mp(_PRE % (port, 500) + """
print(rnd()); show('a')
""")
    assert out.splitlines()[0] == "HttpError"
    fake.mode = "silent"
    out = run_mp(_PRE % (port, 300) + """
fake_ok = rnd(); print(fake_ok)
""")
    assert out.splitlines()[0] in ("TimeoutError", "CancelledError")
    # A port nobody listens on: refused at once; reachable only while answers come in.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    fake.mode = "ok"
    out = run_mp(_PRE % (port, 2000) + """
print(rnd()); show('a')
ch.port = %d
clock.advance(20000)
print(rnd()); show('b')
clock.advance(13000)
print(rnd()); show('c')
print(ch.current_flowing())
""" % dead)
    lines = out.splitlines()
    assert lines[0] == "ok" and json.loads(lines[1][2:])[0] is True
    assert lines[2] == "OSError" and json.loads(lines[3][2:])[0] is True   # 20 s: still reachable
    c = json.loads(lines[5][2:])
    assert c[:4] == [False, False, False, [0, 0, 0]]                        # 33 s: unreachable
    assert lines[6] == "True"   # unknown current: the contactor must not move


def test_charger_without_cp_disconnect_says_so_and_keeps_answering(warp):
    # A WARP without the CP-disconnect feature answers 404 to it. That failed the whole poll
    # for as long as a phase switch wanted the pilot off: the charger's 0 A was never read, so
    # the switch could not finish. Now the charger reports no CP support and polls on.
    fake, port = warp
    fake.cp_feature = False
    fake.state["charger_state"] = 2            # the car has stopped
    fake.values[3:6] = [0.0, 0.0, 0.0]
    out = run_mp(_PRE % (port, 2000) + """
ch.set_current(0)
ch.set_cp_disconnect(True)
print(rnd(), rnd()); show('a')
print(json.dumps([ch.supports_cp_disconnect, ch.cp_disconnect, ch.pushed_ma, ch.current_flowing()]))
""")
    lines = out.splitlines()
    assert lines[0] == "ok ok"
    assert json.loads(lines[2]) == [False, False, 0, False]


def test_writes_go_to_the_documented_update_commands_also_on_firmware_1(warp):
    # The vendor documents evse/external_current, external_enabled and control_pilot_disconnect
    # as states, written through <state>_update. Firmware 2 also routes a PUT to the state path
    # on, firmware 1 answers it 200 with the state and changes nothing: the set-point, the
    # external slot and the pilot never reached a WARP1 on firmware 1.x (while we counted the
    # exchange as good).
    fake, port = warp
    fake.fw = 1
    out = run_mp(_PRE % (port, 2000) + """
ch.set_current(10000)
ch.set_cp_disconnect(True)
print(rnd()); show('a')
""")
    assert out.splitlines()[0] == "ok"
    assert fake.external_enabled is True
    assert fake.external_current == 10000
    assert fake.cp_disconnected is True
    assert json.loads(out.splitlines()[1][2:])[4] == 10000   # allowed_charging_current


def test_phase_currents_of_the_chargers_own_meter(warp):
    # The WARP's own energy meter (SDM630/SDM72 behind its EVSE) declares its currents as
    # CurrentL1..L3ImExSum, value ids 13/17/21 (the vendor's sdm_helpers.cpp; evcc reads those
    # ids), not the signed ImExDiff 14/18/22 an API meter declares. Only 14/18/22 were looked
    # for: a WARP Pro counted as "no meter" and got its allowed current on every phase.
    fake, port = warp
    fake.value_ids = [1, 2, 3, 13, 17, 21, 74]
    fake.values = [230.1, 231.0, 229.5, 7.25, 0.02, 0.0, 1650.0]   # a 1p car
    out = run_mp(_PRE % (port, 2000) + """
ch.set_current(10000)
print(rnd()); show('a')
""")
    a = json.loads(out.splitlines()[1][2:])
    assert a == [True, True, True, [7250, 20, 0], 10000, True]
