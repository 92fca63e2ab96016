# HTTP JSON API: a small HTTP/1.1 server on asyncio streams. Every registry path is served as
# GET /<path> and written by PUT/POST (also at <path>_update, the reference vendor's write URL);
# extra (url, methods, handler) routes (the Wi-Fi /setup page) come first. One request per
# connection (Connection: close): no keep-alive, no pipelining; chunked request bodies and
# `Expect: 100-continue` as HTTP/1.1 asks of a server (curl -T, curl -H 'Transfer-Encoding: chunked'). Written for a ~100 KB heap: a handful of functions (each costs ~100 B of
# heap once loaded), no per-request header dict, the request head read into one bounded buffer.
import asyncio
import gc
import json
from micropython import const

from firmware import call_once
from firmware.api.registry import ApiError

_MAX_CONNECTIONS = const(2)     # open requests at once; each holds its head, body and answer
_MIN_FREE_BYTES = const(16384)  # heap a request may need (the largest JSON answer is ~2 KB)
_TIMEOUT_MS = const(10000)      # a whole request, from accept to the last byte written
_MAX_HEAD = const(2048)         # request line + headers; a browser's are ~0.5-1 KB
_MAX_BODY = const(4096)         # = registry.MAX_BODY_BYTES (const needs a literal)
_CHUNK = const(512)             # read size for the head and for a body that is dropped

_TEXT = b"text/plain; charset=UTF-8"
_JSON = b"application/json; charset=UTF-8"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nBusy\n")

_ALLOW_READ = b"Allow: GET, HEAD, OPTIONS\r\n"
_ALLOW_WRITE = b"Allow: GET, HEAD, PUT, POST, OPTIONS\r\n"

_active = 0                     # requests being served (one server per firmware)


async def _request(stream, registry, routes):
    # Runs under asyncio.wait_for_ms (accept): a timeout cancels it wherever it waits. It frees
    # its connection slot itself, as soon as the answer is out: a client that reconnects at
    # once must not find the slot still taken while the wait_for wrapper unwinds.
    global _active
    try:
        # The head: read until the blank line into one bounded buffer (a line without end must
        # not fill the heap). An oversize head is read to its end and dropped, so that the client
        # gets the 431 instead of a reset connection.
        head = b""
        too_large = False
        while True:
            end = head.find(b"\r\n\r\n")
            if end >= 0:
                end += 4
                break
            end = head.find(b"\n\n")      # bare LF, e.g. typed into netcat
            if end >= 0:
                end += 2
                break
            if len(head) >= _MAX_HEAD:
                too_large = True
                head = head[-3:]          # enough to find the end across two reads
            data = await stream.read(_CHUNK)  # small reads: no 2 KB buffer for a 100 B head
            if not data:
                return                    # closed before the request was complete
            head += data
        status = 200
        ctype = _TEXT
        method = path = ""
        send_body = True
        allow = b""
        try:
            if too_large:
                raise ApiError(431, "Request header too large")
            lines = head[:end].split(b"\n")
            request_line = lines[0].decode().split()
            if len(request_line) != 3:
                raise ApiError(400, "Bad request")
            method, path = request_line[0], request_line[1].split("?", 1)[0]
            length = 0
            coding = None
            expect = False
            form = False
            for line in lines[1:]:
                name_value = line.split(b":", 1)
                name = name_value[0].strip().lower()
                if len(name_value) < 2:
                    if name:
                        raise ValueError          # a header line without its colon: a 400
                    continue                      # the blank line that ends the head
                if name == b"content-length":
                    length = int(name_value[1])   # ValueError: a 400 below
                    if length < 0:
                        raise ValueError
                elif name == b"transfer-encoding":
                    coding = name_value[1].strip().lower()
                elif name == b"expect":
                    # RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored.
                    expect = b"100-continue" in name_value[1].lower() and \
                        request_line[2] != "HTTP/1.0"
                elif name == b"content-type":
                    form = b"x-www-form-urlencoded" in name_value[1]
            if coding is not None and coding != b"chunked":
                raise ApiError(501, "Transfer-Encoding not supported (only chunked)")
            body = head[end:]
            head = None
            # A client that sent `Expect: 100-continue` waits for our word before its body
            # (curl 1 s): a 413 at once when the size is known to be too large, else 100 Continue.
            expect = expect and len(body) < (1 if coding else length)
            if expect and (coding or length <= _MAX_BODY):
                stream.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await stream.drain()
            if coding:
                # Rare (curl -T, a pipe): the decoder is imported for this body and dropped.
                body = await call_once("firmware.api.chunked", "read_body", stream, body)
                if body is None:
                    return
                length = len(body)
            body = body[:length]
            if length > _MAX_BODY:
                # Read (and drop) what the client sends before answering: closing a socket with
                # unread data resets the connection, and the client might not see the 413. One
                # that waits for our word (Expect, no 100 sent) has sent nothing: answer at once.
                length -= len(body)
                while length > 0 and not expect:
                    data = await stream.read(min(length, _CHUNK))
                    if not data:
                        return
                    length -= len(data)
                raise ApiError(413, "Payload too large: at most %d bytes" % _MAX_BODY)
            while len(body) < length:
                data = await stream.read(length - len(body))
                if not data:
                    return
                body += data
            if method == "HEAD":
                method = "GET"            # the same headers, no body
                send_body = False
            answer = None
            for url, methods, handler in routes:
                if url == path:
                    if method in methods:
                        # Imported for this request only (route_request.py drops itself).
                        from firmware.api.route_request import request
                        answer, status, headers = await handler(
                            request(method, path, body, form))
                        ctype = headers.get("Content-Type", _TEXT)  # str: b"%s" takes it
                        break
            else:
                path = path[1:].rstrip("/")
                if method == "GET":
                    answer = json.dumps(registry.read(path))
                    ctype = _JSON
                elif method == "PUT" or method == "POST":
                    if path.endswith("_update") and not registry.has(path):
                        path = path[:-7]  # the reference's write URL: <path>_update
                    registry.write(path, body)
                    answer = b""
                else:
                    # 404 for an unknown path; else what it allows (RFC 9110 15.5.6, 9.3.7).
                    allow = _ALLOW_WRITE if registry.writable(path) else _ALLOW_READ
                    if method != "OPTIONS":
                        raise ApiError(405, "Method not allowed: GET reads, PUT or POST writes")
                    answer = b""
        except ApiError as e:
            status = e.status
            answer = e.message + "\n"
            if status == 405 and not allow:
                allow = _ALLOW_READ       # a write to a read-only object
        except ValueError:
            status = 400
            answer = "Bad request\n"
        except Exception as e:            # a bug or a MemoryError costs this request only
            status = 500
            answer = "Internal server error\n"
            print("http 500:", method, path, repr(e))
        body = head = None
        # A view of the str's UTF-8 bytes: their length, written without an encoded copy.
        answer = memoryview(answer)
        # The reason phrase is free text (RFC 9112): no table of them, the body says what is wrong.
        stream.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                     b"%sConnection: close\r\n\r\n" % (status, b"OK" if status == 200 else b"Error",
                                                       ctype, len(answer), allow))
        if send_body:
            stream.write(answer)
        await stream.drain()
    finally:
        _active -= 1
        stream.s.close()            # (Stream.close() does not close the socket)


async def serve(registry, routes, host="0.0.0.0", port=80, timeout_ms=_TIMEOUT_MS):
    """Serve `registry` and the extra (url, methods, handler) `routes` forever. Admission control
    for a ~100 KB heap: over _MAX_CONNECTIONS open requests, or with less than _MIN_FREE_BYTES of
    heap even after a collection, a new connection gets a short 503 and is closed at once; a
    request not answered within `timeout_ms` (a client that connects and sends nothing, or too
    slowly) is dropped. Measured with host_tests/test_http_load.py."""

    async def accept(stream, _):
        global _active
        busy = _active >= _MAX_CONNECTIONS
        if not busy and gc.mem_free() < _MIN_FREE_BYTES:
            gc.collect()                # a few ms; only when the heap looks short
            busy = gc.mem_free() < _MIN_FREE_BYTES
        if busy:
            # Answer and close without awaiting: a refusal that waited for the event loop would
            # keep its task, stream and socket alive, and 50 of those fill the heap.
            try:
                stream.s.write(_BUSY)   # non-blocking; fits the fresh socket's send buffer
            except Exception:           # (OSError: the client is gone already)
                pass
            stream.s.close()
            return
        _active += 1                    # _request gives the slot back
        try:
            await asyncio.wait_for_ms(_request(stream, registry, routes), timeout_ms)
        except Exception:   # timed out, the client went away (OSError), or no heap left for the
            pass            # answer: this connection is lost, never the server

    server = await asyncio.start_server(accept, host, port)
    await server.wait_closed()
