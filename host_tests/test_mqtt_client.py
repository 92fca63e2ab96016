"""The MQTT client (firmware/mqtt/client.py) on the Unix port: golden packets, the outgoing queue
policy, and real connections to mosquitto (started per test on a free port)."""
import socket
import threading
import time

import pytest

from mp import run_mp
from mqtt_support import Broker, MpProc, Observer


def test_packets_golden_bytes():
    out = run_mp("""
from firmware.mqtt import packet as p
print(p.connect("dev", 30, "u", "pw", ("a/w", "offline", 1, True)).hex())
print(p.connect("dev", 60).hex())
print(p.publish("a/b", b"xy", 1, True, 0x1234).hex())
print(p.publish("a/b", "xy").hex())
print(p.subscribe(7, [("a/+", 1), ("b", 0)]).hex())
print(p.puback(258).hex())
print(p.publish("t", b"x" * 321)[:5].hex())
print(p.topic_ok("a/b"), p.topic_ok("a/+"), p.topic_ok(""), p.topic_ok("a/#", True))
""").split()
    # CONNECT: "MQTT" level 4, flags user|pass|will-retain|will-qos1|will|clean = 0xee
    assert out[0] == ("10" "24" "00044d515454" "04" "ee" "001e" "0003646576"
                      "0003612f77" "00076f66666c696e65" "000175" "00027077")
    assert out[1] == "10" "0f" "00044d515454" "04" "02" "003c" "0003646576"
    assert out[2] == "33" "09" "0003612f62" "1234" "7879"      # QoS 1, retain
    assert out[3] == "30" "07" "0003612f62" "7879"
    assert out[4] == "82" "0c" "0007" "0003612f2b" "01" "000162" "00"
    assert out[5] == "40020102"
    assert out[6] == "30c4020001"  # remaining length 324 = 0xc4 0x02 (2.2.3)
    assert out[7:] == ["True", "False", "False", "True"]


def test_queue_policy_states_coalesce_and_drop_oldest_never_commands():
    out = run_mp("""
from firmware.clock import ManualClock
from firmware.mqtt.client import MQTTClient, STATE, COMMAND
c = MQTTClient(ManualClock(), "127.0.0.1", queue_len=3, log=lambda m: None)
c.publish("s/1", "a", True, 0, STATE)
c.publish("s/1", "b", True, 0, STATE)        # replaces the queued value of s/1
c.publish("s/2", "c", True, 0, STATE)
c.publish("cmd/1", "x", False, 1, COMMAND)
c.publish("s/3", "d", True, 0, STATE)        # full: s/1 (oldest state) goes
print([e[0] + "=" + e[1] for e in c._queue], c.dropped)
for i in range(4):
    c.publish("cmd/%d" % (i + 2), "y", False, 1, COMMAND)   # states make room, then extra room
print([e[0] for e in c._queue], c.dropped)
print(c.publish("s/9", "z", True, 0, STATE), c.dropped)     # only commands: the state is refused
for i in range(10):
    c.publish("cmd/x%d" % i, "y")
print(len(c._queue), c.dropped)              # commands bounded at 2 * queue_len
""").splitlines()
    assert out[0] == "['s/2=c', 'cmd/1=x', 's/3=d'] 1"
    assert out[1] == "['cmd/1', 'cmd/2', 'cmd/3', 'cmd/4', 'cmd/5'] 3"
    assert out[2] == "False 4"
    assert out[3] == "6 13"


# A client process: subscribes to t/in (QoS 1), echoes each message to t/echo (QoS 1) with its
# retain flag, publishes a counter state to t/state every 500 ms of its clock, availability with
# a last will, and prints what it sees.
_CLIENT = """
import asyncio, json
from firmware.clock import Clock
from firmware.mqtt.client import MQTTClient, STATE
clock = Clock(%(speed)d)
def on_msg(t, p, r):
    print("MSG", json.dumps([t, len(p), r]))
    c.publish("t/echo", p[:64], False, 1)
def on_big(t, r):
    print("BIG", t, r)
    c.publish("t/echo", "big:" + t, False, 1)
c = MQTTClient(clock, %(host)r, %(port)d, client_id="dev1", user=%(user)r, password=%(pw)r,
               keepalive_s=%(keepalive)d, will=("t/avail", "offline", 1, True),
               ack_timeout_ms=%(ack_ms)d, connect_timeout_ms=%(ack_ms)d, write_timeout_ms=%(ack_ms)d,
               on_message=on_msg, on_oversize=on_big, rx_bytes=1024,
               on_connect=lambda: c.publish("t/avail", "online", True, 1))
c.subscribe("t/in", 1)
FLOOD = "x" * %(flood_bytes)d
async def control_loop():
    # Stands in for the control loop: a fixed period, measured on the same clock.
    last = clock.ticks_ms()
    worst = 0
    n = 0
    seen = 0
    while True:
        await clock.sleep_ms(%(period)d)
        now = clock.ticks_ms()
        worst = max(worst, now - last)
        last = now
        n += 1
        c.publish("t/state", str(n), True, 0, STATE)
        for i in range(%(flood)d):
            c.publish("t/flood/%%d" %% i, FLOOD, True, 0, STATE)
        if c.connects != seen:
            seen = c.connects
            print("CONN", seen)
        if n %% %(report)d == 0:
            print("PERIOD", worst)
            worst = 0
async def main():
    asyncio.create_task(c.run())
    await control_loop()
asyncio.run(main())
"""


def client_proc(port, user="", pw="", speed=1, keepalive=30, ack_ms=5000, period=500, flood=0,
                flood_bytes=1000, report=2, host="127.0.0.1"):
    return MpProc(_CLIENT % dict(host=host, port=port, user=user, pw=pw, speed=speed,
                                 keepalive=keepalive,
                                 ack_ms=ack_ms, period=period, flood=flood,
                                 flood_bytes=flood_bytes, report=report))


@pytest.fixture
def broker():
    b = Broker().start()
    yield b
    b.close()


def test_connect_auth_publish_subscribe_qos1_and_last_will():
    with Broker(users={"dev": "s3cret"}) as b:
        obs = Observer(b.port, ["t/#"], user="dev", password="s3cret")
        bad = client_proc(b.port, "dev", "wrong")
        bad.wait_line(lambda s: "connection refused: not authorized" in s)
        bad.close()
        mp = client_proc(b.port, "dev", "s3cret")
        try:
            assert obs.wait_topic("t/avail")[1] == b"online"
            n = int(obs.wait_topic("t/state")[1])
            assert int(obs.wait_topic("t/state")[1]) > n
            obs.publish("t/in", b"hello", qos=1)
            assert obs.wait_topic("t/echo")[1] == b"hello"
            obs.publish("t/in", b"q0", qos=0)
            assert obs.wait_topic("t/echo")[1] == b"q0"
            assert mp.wait_json("MSG") == ["t/in", 5, False]
            # The process dies without DISCONNECT: the broker publishes the last will.
            mp.proc.kill()
            m = obs.wait_topic("t/avail")
            assert m[1] == b"offline"
        finally:
            mp.close()
            obs.close()


def test_broker_restart_reconnects_resubscribes_and_republishes(broker):
    mp = client_proc(broker.port, keepalive=2, ack_ms=2000, host="localhost")  # a name: resolved
    try:
        mp.wait_line(lambda s: s == "CONN 1")
        broker.stop()
        time.sleep(0.5)
        broker.start()  # no persistence: the retained state is gone until re-published
        mp.wait_line(lambda s: s == "CONN 2", timeout=15)
        obs = Observer(broker.port, ["t/#"])
        assert obs.wait_topic("t/avail")[1] == b"online"
        obs.wait_topic("t/state")
        obs.publish("t/in", b"again")  # the subscription was renewed
        assert obs.wait_topic("t/echo")[1] == b"again"
        obs.close()
    finally:
        mp.close()


def test_huge_message_skipped_and_client_keeps_working(broker):
    obs = Observer(broker.port, ["t/#"])
    mp = client_proc(broker.port)
    try:
        obs.wait_topic("t/avail")
        obs.publish("t/in", b"{" + b"x" * 200000 + b"}")  # 200 kB against a 1 kB buffer
        assert obs.wait_topic("t/echo")[1] == b"big:t/in"
        obs.publish("t/in", b"small")
        assert obs.wait_topic("t/echo")[1] == b"small"
        assert mp.wait_json("MSG") == ["t/in", 5, False]
        assert "CONN 2" not in "".join(mp.out)
    finally:
        mp.close()
        obs.close()


class FakeBroker:
    """A scripted broker: each accepted connection runs the next script(conn) in a thread."""

    def __init__(self, scripts):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.scripts = list(scripts)
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        for script in self.scripts:
            conn, _ = self.sock.accept()
            conn.settimeout(10)
            try:
                script(self, conn)
            except OSError:
                pass
            finally:
                conn.close()

    def read_packet(self, conn):
        first = conn.recv(1)
        if not first:
            raise OSError("closed")
        n, shift = 0, 0
        while True:
            b = conn.recv(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        body = b""
        while len(body) < n:
            body += conn.recv(n - len(body))
        self.received.append((first[0], body))
        return first[0], body


def _until_closed(conn):
    while conn.recv(4096):
        pass


def _connack(fb, conn):
    first, _ = fb.read_packet(conn)
    assert first == 0x10
    conn.sendall(b"\x20\x02\x00\x00")


def test_survives_broker_closing_mid_packet_and_garbage():
    def mid_packet(fb, conn):
        _connack(fb, conn)
        # A PUBLISH announcing 50 bytes of which only 6 arrive, then the connection is gone.
        conn.sendall(b"\x30\x32\x00\x04t/in" + b"ab")
        conn.shutdown(socket.SHUT_WR)
        _until_closed(conn)

    def garbage(fb, conn):
        _connack(fb, conn)
        conn.sendall(b"\x30\xff\xff\xff\xff\xff")  # remaining length longer than 4 bytes
        _until_closed(conn)  # the client must notice and hang up itself

    def truncated_connack(fb, conn):
        fb.read_packet(conn)
        conn.sendall(b"\x20")
        conn.shutdown(socket.SHUT_WR)
        _until_closed(conn)

    def good(fb, conn):
        _connack(fb, conn)
        # A QoS 1 message must be acknowledged with its packet id.
        conn.sendall(b"\x32\x0b\x00\x04t/in\x12\x34hey")
        while True:
            first, body = fb.read_packet(conn)
            if first == 0x40:
                fb.acked = body
            if first & 0xF0 == 0x30 and body.startswith(b"\x00\x06t/echo"):
                fb.echo = body
                return

    fb = FakeBroker([mid_packet, garbage, truncated_connack, good])
    fb.acked = fb.echo = None
    mp = client_proc(fb.port, speed=4)
    try:
        mp.wait_line(lambda s: s.startswith("MSG"), timeout=20)
        end = time.monotonic() + 10
        while fb.echo is None and time.monotonic() < end:
            time.sleep(0.05)
        assert fb.acked == b"\x12\x34"
        assert fb.echo is not None and fb.echo.endswith(b"hey")
        text = "".join(mp.out)
        assert "connection closed by broker" in text
        assert "malformed remaining length" in text
        assert "Traceback" not in text
    finally:
        mp.close()


def test_paused_broker_does_not_change_the_control_loop_period(broker):
    """SIGSTOP the broker for 30 s of firmware time (time factor 5: 6 s real) while the firmware
    publishes 3 MB of state per real second (enough to fill the loopback socket buffers, so a
    blocking write would hang); the control loop's period must not move, and the client must
    come back after SIGCONT."""
    speed = 5
    mp = client_proc(broker.port, speed=speed, keepalive=10, ack_ms=5000, period=500, flood=20,
                     flood_bytes=16000, report=2)
    obs = Observer(broker.port, ["t/state"])
    try:
        mp.wait_line(lambda s: s == "CONN 1")
        obs.wait_topic("t/state")
        mp.wait_line(lambda s: s.startswith("PERIOD"))
        broker.pause()
        t0 = time.monotonic()
        worst = []
        while time.monotonic() - t0 < 30 / speed:
            worst.append(int(mp.wait_line(lambda s: s.startswith("PERIOD")).split()[1]))
        broker.resume()
        assert len(worst) >= 4
        # 500 ms nominal; a blocking socket call would stall for the whole pause (30 s). Allow
        # 5 s of firmware time (1 s real) for host scheduling noise, which the time factor
        # multiplies.
        assert max(worst) <= 5000, worst
        assert "no PINGRESP" in "".join(mp.out) or "write timeout" in "".join(mp.out)
        mp.wait_line(lambda s: s.startswith("CONN 2"), timeout=30)
        obs.drain()
        obs.wait_topic("t/state", timeout=10)
    finally:
        mp.close()
        obs.close()


def test_unacknowledged_qos1_publish_is_sent_again_after_reconnect():
    def no_ack(fb, conn):
        _connack(fb, conn)
        conn.sendall(b"\x30\x09\x00\x04t/inabc")  # QoS 0 message: the client echoes it (QoS 1)
        while True:
            first, body = fb.read_packet(conn)
            if first & 0xF0 == 0x30 and body.startswith(b"\x00\x06t/echo"):
                fb.first = body
                return  # hang up without PUBACK

    def ack(fb, conn):
        _connack(fb, conn)
        while True:
            first, body = fb.read_packet(conn)
            if first & 0xF0 == 0x30 and body.startswith(b"\x00\x06t/echo"):
                conn.sendall(b"\x40\x02" + body[8:10])
                fb.second = body
                time.sleep(1)
                return

    fb = FakeBroker([no_ack, ack])
    fb.first = fb.second = None
    mp = client_proc(fb.port, speed=4)
    try:
        end = time.monotonic() + 15
        while fb.second is None and time.monotonic() < end:
            time.sleep(0.05)
        assert fb.first is not None and fb.first.endswith(b"abc")
        assert fb.second is not None and fb.second.endswith(b"abc")
    finally:
        mp.close()


def test_host_name_resolved_once_and_again_after_failed_connects():
    out = run_mp("""
import socket
from firmware.clock import ManualClock
from firmware.mqtt import client as m
calls = []
class FakeSocket:
    SOCK_STREAM = socket.SOCK_STREAM
    AF_INET = socket.AF_INET
    @staticmethod
    def getaddrinfo(host, port, af=0, kind=0):
        calls.append(host)
        return socket.getaddrinfo("127.0.0.1", port, 0, socket.SOCK_STREAM)
m.socket = FakeSocket
c = m.MQTTClient(ManualClock(), "broker.lan", 1883, log=lambda s: None)
print(c._address(), c._address(), len(calls))
c._ip_fails = 3           # three connects in a row failed with that address
print(c._address(), len(calls))
""").split()
    assert out == ["127.0.0.1", "127.0.0.1", "1", "127.0.0.1", "2"]
