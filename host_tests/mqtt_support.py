"""Shared helpers of the MQTT tests and the MQTT benchmark: a real mosquitto on a free port, a
paho-mqtt observer, and a MicroPython process running firmware code in the background."""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho

from mp import MICROPYTHON, _PRELUDE, ROOT

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listens on port %d" % port)


class Broker:
    """mosquitto with a temp config (no persistence: a restart loses retained messages, so a
    re-publish after reconnect is really observed)."""

    def __init__(self, port=None, users=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="mqtt-broker-")
        conf = ["listener %d 127.0.0.1" % self.port, "persistence false",
                "log_dest stderr", "log_type error"]
        if users:
            pw = os.path.join(self.dir, "passwd")
            open(pw, "w").close()
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, user, password], check=True,
                               capture_output=True)
            # mosquitto started as root drops to its own user before reading the file
            os.chmod(self.dir, 0o755)
            os.chmod(pw, 0o644)
            conf += ["allow_anonymous false", "password_file " + pw]
        else:
            conf.append("allow_anonymous true")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class Observer:
    """A paho-mqtt client collecting every message of the given subscriptions."""

    def __init__(self, port, topics=("#",), client_id=None, user=None, password=None):
        self.messages = queue.Queue()
        self.log = []
        self._lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        if user:
            self.c.username_pw_set(user, password)
        self._topics = topics
        self._subscribed = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self._subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("observer could not subscribe")

    def _on_connect(self, client, userdata, flags, rc, props=None):
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client, userdata, msg):
        m = (msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic())
        with self._lock:
            self.log.append(m)
        self.messages.put(m)

    def wait_for(self, pred, timeout=10.0):
        """Next message (topic, payload, retain, t) for which pred(topic, payload) holds."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching message within %.1f s; got %r"
                                     % (timeout, [m[:3] for m in self.log[-10:]]))
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if pred(m[0], m[1]):
                return m

    def wait_topic(self, topic, timeout=10.0, payload_pred=None):
        return self.wait_for(lambda t, p: t == topic and (payload_pred is None or payload_pred(p)),
                             timeout)

    def wait_logged(self, topic, timeout=10.0, payload_pred=None):
        """The first message on `topic` (matching payload_pred) that arrived, earlier or within
        `timeout`: unlike wait_topic, the order of waits does not matter."""
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                hits = [m for m in self.log if m[0] == topic
                        and (payload_pred is None or payload_pred(m[1]))]
            if hits:
                return hits[0]
            if time.monotonic() > end:
                raise AssertionError("%s never arrived; topics seen: %r"
                                     % (topic, sorted({m[0] for m in self.log})))
            time.sleep(0.02)

    def drain(self):
        while True:
            try:
                self.messages.get_nowait()
            except queue.Empty:
                return

    def publish(self, topic, payload, qos=1, retain=False):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class MpProc:
    """Firmware code running on the Unix port in the background; its stdout lines are queued."""

    def __init__(self, code, heap="200wK"):
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=" + heap, "-c", _PRELUDE + code],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines = queue.Queue()
        self.out = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.out.append(line)
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                text = "".join(s for s in self.out if not s.startswith("PERIOD"))
                raise AssertionError("no matching output line; output:\n" + text[-3000:])
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("micropython exited %s; output:\n%s"
                                     % (self.proc.wait(), "".join(self.out[-60:])))
            if pred(line):
                return line

    def wait_json(self, tag, timeout=10.0):
        line = self.wait_line(lambda s: s.startswith(tag + " "), timeout)
        return json.loads(line[len(tag) + 1:])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
