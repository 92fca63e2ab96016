"""Start the firmware under `tools/sim_main.py` (what `make sim` runs) for end-to-end tests."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from mp import MICROPYTHON, ROOT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    def __init__(self, sim_dir, speed=1, profile="", heap="256wK", extra=(), via_make=False,
                 make_vars=()):
        self.sim_dir = str(sim_dir)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = "%s.log" % self.sim_dir.rstrip("/")
        self._log = open(self.log_path, "w")
        if via_make:  # exactly what the README tells a newcomer to type
            cmd = ["make", "--no-print-directory", "sim", "PORT=%d" % self.port,
                   "SIM_DIR=" + self.sim_dir, "SIM_SPEED=%d" % speed, "SIM_PROFILE=" + profile, *make_vars]
        else:
            cmd = [MICROPYTHON, "-X", "heapsize=" + heap, "tools/sim_main.py",
                   "--port", str(self.port), "--dir", self.sim_dir, "--speed", str(speed),
                   "--profile", profile, *extra]
        # Own process group, so stop() also ends micropython when make started it.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout_s=20):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sim exited %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                self.get("power_manager/state")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise RuntimeError("sim did not answer within %d s:\n%s" % (timeout_s, self.log()))

    def log(self):
        self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None):
        """Return (status, body_text)."""
        data = body.encode() if isinstance(body, str) else body
        req = urllib.request.Request(self.url + "/" + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def get(self, path):
        status, text = self.request("GET", path)
        assert status == 200, (path, status, text)
        return json.loads(text)

    def put(self, path, body):
        return self.request("PUT", path, body if isinstance(body, str) else json.dumps(body))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
