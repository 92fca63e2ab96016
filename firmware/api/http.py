# HTTP JSON API on Microdot: every registry path is served as GET /<path>, written by PUT/POST.
import asyncio
import gc

from microdot import Microdot, Request

from firmware.api.registry import ApiError, MAX_BODY_BYTES

_TEXT = {"Content-Type": "text/plain; charset=UTF-8"}
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nBusy\n")


class LimitedMicrodot(Microdot):
    """Microdot with admission control for a ~100 KB heap, where each open request holds its
    buffers (request line, headers, the JSON it answers): over `max_connections`, or with less
    than `min_free_bytes` of heap even after a collection, a new connection gets a short 503 and
    is closed; a request not answered within `request_timeout_ms` (a client that sends nothing)
    is dropped. Measured with host_tests/test_http_load.py (50 connections at 100wK)."""

    max_connections = 2
    min_free_bytes = 16384
    request_timeout_ms = 10000

    def __init__(self):
        super().__init__()
        self.active = 0
        self.refused = 0
        self.timed_out = 0

    def _room(self):
        if self.active >= self.max_connections:
            return False
        if gc.mem_free() >= self.min_free_bytes:
            return True
        gc.collect()              # a few ms; only when the heap looks short
        return gc.mem_free() >= self.min_free_bytes

    async def handle_request(self, reader, writer):
        if not self._room():
            self.refused += 1
            # Answer and close without awaiting: a refusal that waited for the event loop would
            # keep its task, stream and socket alive, and 50 of those fill the heap.
            sock = getattr(writer, "s", None)    # MicroPython's asyncio.Stream socket
            try:
                if sock is not None:
                    sock.write(_BUSY)            # non-blocking; fits the socket's send buffer
                    sock.close()
                else:
                    await writer.awrite(_BUSY)
                    await writer.aclose()
            except OSError:
                pass
            return
        self.active += 1
        try:
            await asyncio.wait_for_ms(super().handle_request(reader, writer),
                                      self.request_timeout_ms)
        except asyncio.TimeoutError:
            self.timed_out += 1
            try:
                await writer.aclose()
            except OSError:
                pass
        finally:
            self.active -= 1


def make_app(registry, routes=()):
    """`routes`: extra (url, methods, handler) served before the registry (e.g. /setup)."""
    Request.max_content_length = MAX_BODY_BYTES  # Microdot answers 413 above this
    app = LimitedMicrodot()
    for url, methods, handler in routes:
        app.route(url, methods=methods)(handler)

    @app.route("/<path:path>", methods=["GET", "PUT", "POST"])
    async def handle(request, path):
        path = path.rstrip("/")
        if "chunked" in request.headers.get("Transfer-Encoding", ""):
            return ("Chunked request bodies are not supported: send a Content-Length\n", 411,
                    _TEXT)
        try:
            if request.method == "GET":
                return registry.read(path)
            registry.write(path, request.body)
            return "", 200, _TEXT
        except ApiError as e:
            return e.message + "\n", e.status, _TEXT

    @app.errorhandler(405)
    async def bad_method(request):
        return "Method not allowed: GET reads, PUT or POST writes\n", 405, _TEXT

    @app.errorhandler(413)
    async def too_large(request):
        return "Payload too large: at most %d bytes\n" % MAX_BODY_BYTES, 413, _TEXT

    return app
