# Chunked request bodies (RFC 9112 7.1) for firmware/api/http.py: what curl sends for an upload
# of unknown size (`curl -T -`) or with `-H 'Transfer-Encoding: chunked'`. Rare, so imported for
# one body and dropped again (firmware.call_once): no heap between such requests.
from micropython import const

from firmware.api.registry import ApiError, MAX_BODY_BYTES

_CHUNK = const(512)             # read size, as the server's


async def _line(stream, buf):
    """(line, rest) of a chunked body: the next line without its line end, and the bytes after
    it; line None when the client went away. A line over 256 bytes (a chunk size with its
    extensions, a trailer field) is a 400: no line without end fills the heap."""
    while True:
        i = buf.find(b"\n")
        if i >= 0:
            return buf[:i].rstrip(b"\r"), buf[i + 1:]
        if len(buf) > 256:
            raise ValueError
        data = await stream.read(_CHUNK)
        if not data:
            return None, buf
        buf += data


async def read_body(stream, buf):
    """A chunked request body (RFC 9112 7.1), `buf` = what the head's reads got past the head.
    Returns the body, None when the client went away; ValueError (a 400) for a malformed one,
    ApiError 413 over MAX_BODY_BYTES, after reading it to its end (as for a Content-Length)."""
    body = b""
    over = False
    while True:
        line, buf = await _line(stream, buf)
        if line is None:
            return None
        size = int(line.split(b";", 1)[0], 16)   # chunk extensions are ignored
        if size < 0:
            raise ValueError
        if size == 0:
            break
        over = over or len(body) + size > MAX_BODY_BYTES
        while size > 0:                 # the chunk's bytes: those read already, then more
            if not buf:
                buf = await stream.read(min(size, _CHUNK))
                if not buf:
                    return None
            if not over:
                body += buf[:size]
            n = min(size, len(buf))
            buf = buf[n:]
            size -= n
        line, buf = await _line(stream, buf)     # the chunk's line end
        if line is None:
            return None
        if line:
            raise ValueError            # more data than its size said
    while True:                         # trailer fields (ignored) up to the blank line
        line, buf = await _line(stream, buf)
        if line is None:
            return None
        if not line:
            break
    if over:
        raise ApiError(413, "Payload too large: at most %d bytes" % MAX_BODY_BYTES)
    return body
