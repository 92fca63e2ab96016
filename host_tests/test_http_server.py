"""firmware/api/http.py on the Unix port against a stand-in registry: routing, errors, HEAD,
forms, and clients that are slow, vanish mid-request, send nothing or too much."""
import http.client
import json
import socket
import subprocess
import time

import pytest

from mp import MICROPYTHON, ROOT, _PRELUDE

SERVER = r"""
import asyncio
import json
from firmware.api.http import serve
from firmware.api.registry import ApiError

class Registry:
    def __init__(self):
        self.writes = []
    def read(self, path):
        if path == "missing":
            raise ApiError(404, "No such object: missing")
        return {"path": path, "writes": self.writes, "text": "n\u00e4t"}
    def has(self, path):
        return path in ("w", "ro", "a")
    def writable(self, path):
        if path == "missing":
            raise ApiError(404, "No such object: missing")
        return path != "ro"
    def write(self, path, body):
        if path == "ro":
            raise ApiError(405, "ro is read-only")
        self.writes.append([path, body.decode()])

async def page(request):
    return "<p>%s %s</p>" % (request.method, request.path), 200, {"Content-Type": "text/html"}

async def form(request):
    return json.dumps(request.form) if request.form is not None else "no form", 201, {}

async def loaded(request):
    import sys
    return repr([m for m in sys.modules if "route_request" in m or "chunked" in m]), 200, {}

async def boom(request):
    raise MemoryError("memory allocation failed, allocating 4096 bytes")

routes = [("/page", ["GET"], page), ("/form", ["POST"], form), ("/boom", ["GET"], boom),
          ("/loaded", ["GET"], loaded)]
asyncio.run(serve(Registry(), routes, "127.0.0.1", PORT, timeout_ms=600))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("http") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=100wK", "-c",
                                 _PRELUDE + SERVER.replace("PORT", str(port))],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.05)
        yield port
        assert proc.poll() is None, "the server died: " + log.read_text()
        assert "Task exception" not in log.read_text(), log.read_text()
    finally:
        proc.kill()
        proc.wait()


def call(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        c.close()


def raw(port, data, pause_s=0.0, step=1):
    """Send `data` (slowly, `step` bytes per `pause_s`), return all the server sends."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        for i in range(0, len(data), step if pause_s else len(data) or 1):
            s.sendall(data[i:i + (step if pause_s else len(data))])
            time.sleep(pause_s)
        out = b""
        while True:
            d = s.recv(4096)
            if not d:
                return out
            out += d
    finally:
        s.close()


def test_registry_read_write_and_errors(port):
    status, ctype, body = call(port, "GET", "/a/b/?x=1")
    assert (status, ctype) == (200, "application/json; charset=UTF-8")
    assert json.loads(body) == {"path": "a/b", "writes": [], "text": "n\u00e4t"}
    # JSON whatever the Content-Type says (curl -d sends a form type); PUT and POST alike.
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    assert call(port, "PUT", "/w", '{"a": 1}', form_type)[:1] == (200,)
    assert call(port, "POST", "/w", "2")[0] == 200
    assert json.loads(call(port, "GET", "/x")[2])["writes"] == [["w", '{"a": 1}'], ["w", "2"]]
    assert call(port, "GET", "/missing") == (404, "text/plain; charset=UTF-8",
                                             b"No such object: missing\n")
    assert call(port, "PUT", "/ro", "{}")[::2] == (405, b"ro is read-only\n")
    for method in ("DELETE", "PATCH"):
        assert call(port, method, "/a")[::2] == (
            405, b"Method not allowed: GET reads, PUT or POST writes\n")
    assert call(port, "OPTIONS", "/a")[::2] == (200, b"")
    assert call(port, "OPTIONS", "/missing")[0] == 404


def test_head_has_the_get_headers_and_no_body(port):
    reply = raw(port, b"HEAD /a HTTP/1.0\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b""
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(raw(port, b"GET /a HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2])


def test_extra_routes_come_first_and_get_forms(port):
    assert call(port, "GET", "/page") == (200, "text/html", b"<p>GET /page</p>")
    status, ctype, body = call(port, "POST", "/form", "ssid=my+n%C3%A4t%26co&password=p%3Dw&x&bad=%zz",
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, ctype) == (201, "text/plain; charset=UTF-8")
    assert json.loads(body) == {"ssid": "my n\u00e4t&co", "password": "p=w", "x": "",
                                "bad": "%zz"}
    assert call(port, "POST", "/form", '{"a": 1}')[2] == b"no form"
    # The request object's module is gone again once the handler has it (rare path, no heap).
    assert call(port, "GET", "/loaded")[2] == b"[]"
    # A route's other methods: the registry's (PUT), or 405.
    assert call(port, "DELETE", "/page")[0] == 405
    assert call(port, "PUT", "/page", "{}")[0] == 200


def test_bad_requests_get_clear_errors(port):
    assert raw(port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(port, b"PUT /w HTTP/1.0\r\nContent-Length: ten\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
    assert raw(port, b"PUT /w HTTP/1.0\r\nContent-Length: -5\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
    # A header line without its colon was an IndexError, answered 500 (a server bug).
    for name in (b"Content-Length", b"Content-Type", b"Transfer-Encoding", b"X-Any"):
        reply = raw(port, b"PUT /w HTTP/1.0\r\n" + name + b"\r\n\r\n2")
        assert reply.startswith(b"HTTP/1.1 400 ") and reply.endswith(b"Bad request\n"), reply
    reply = raw(port, b"PUT /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert ["w", "hello"] in json.loads(call(port, "GET", "/x")[2])["writes"]
    assert call(port, "GET", "/loaded")[2] == b"[]"  # the decoder is dropped again (rare, heap)
    reply = raw(port, b"PUT /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"9" * 300)
    assert reply.startswith(b"HTTP/1.1 400 ")        # a chunk size line without end
    reply = raw(port, b"PUT /w HTTP/1.1\r\nTransfer-Encoding: compress\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 501 ")
    status, _, body = call(port, "PUT", "/big", json.dumps({"pad": "x" * 5000}))
    assert status == 413 and body == b"Payload too large: at most 4096 bytes\n"
    reply = raw(port, b"GET /a HTTP/1.0\r\nCookie: " + b"c" * 6000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert "big" not in [w[0] for w in json.loads(call(port, "GET", "/x")[2])["writes"]]
    # Bare LF line ends (typed into netcat) are fine.
    assert raw(port, b"GET /lf HTTP/1.0\n\n").startswith(b"HTTP/1.1 200 OK")


def test_memory_error_in_a_handler_costs_that_request_only(port):
    assert call(port, "GET", "/boom")[::2] == (500, b"Internal server error\n")
    assert call(port, "GET", "/a")[0] == 200


def test_slow_vanishing_and_silent_clients_free_their_slot(port):
    # A request arriving a few bytes at a time (bad Wi-Fi) is served.
    reply = raw(port, b"PUT /slow HTTP/1.0\r\nContent-Length: 2\r\n\r\n42", pause_s=0.005, step=3)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    # Clients that vanish mid-head or mid-body leave no slot taken (2 slots, 6 clients).
    for data in (b"GET /a HTT", b"PUT /w HTTP/1.0\r\nContent-Length: 10\r\n\r\n12"):
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(data)
            time.sleep(0.02)
            s.close()
    assert call(port, "GET", "/a")[0] == 200
    # Two clients that send nothing hold both slots: a third is turned away at once, with a
    # 503 (or a reset: the server closes without reading, to spend no heap on it)...
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    time.sleep(0.1)
    t0 = time.monotonic()
    try:
        assert raw(port, b"GET /a HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 503 ")
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 0.3
    # ...until the request timeout (600 ms here) closes them.
    for s in silent:
        assert s.recv(100) == b""
        s.close()
    assert call(port, "GET", "/a")[0] == 200
