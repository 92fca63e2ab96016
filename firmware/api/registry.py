# The one place through which HTTP, MQTT and the display read objects and submit writes.
# An object is anything with to_dict() (a JSON-able dict, every documented key) and, when
# writable, write(payload_dict). Writes raise ApiError; a rejected write changes nothing.
# An entry may also be a tuple (read_fn, arg) or (read_fn, arg, write_fn): read gives
# read_fn(arg), write calls write_fn(arg, any_json_value). A tuple costs ~40 B where an object
# with its attribute dict costs ~150-250 B (heap diet, docs/board.md).
import json

MAX_BODY_BYTES = 4096


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(body):
    """Parse a write body as JSON, whatever the Content-Type said."""
    if body is None:
        body = b""
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "Payload too large: at most %d bytes" % MAX_BODY_BYTES)
    try:
        text = body.decode() if isinstance(body, (bytes, bytearray, memoryview)) else body
        payload = json.loads(text)
    except (ValueError, UnicodeError):
        raise ApiError(400, "Failed to parse JSON payload")
    except MemoryError:
        # The parser's stack grows with the nesting: ~4000 '[' fit in the size limit but not in
        # the heap. A client error, not the server's (HTTP and MQTT answered 500 before).
        raise ApiError(400, "Failed to parse JSON payload: nested too deeply for the memory left")
    return payload


def as_object(payload, keys):
    """An object with exactly one writable key may be written as a bare value (`-d '2'`)."""
    if isinstance(payload, dict):
        return payload
    if len(keys) == 1:
        return {keys[0]: payload}
    raise ApiError(400, "JSON payload must be an object")


class Registry:
    def __init__(self):
        self._objects = {}

    def add(self, path, obj):
        self._objects[path] = obj
        return obj

    def get_object(self, path):
        obj = self._objects.get(path)
        if obj is None:
            raise ApiError(404, "No such object: %s" % path)
        return obj

    def has(self, path):
        return path in self._objects

    def writable(self, path):
        """True when `path` takes writes (404 ApiError for an unknown path): HTTP's Allow."""
        obj = self.get_object(path)
        if type(obj) is tuple:
            return len(obj) > 2
        return hasattr(obj, "write_body") or hasattr(obj, "write")

    def paths(self):
        return sorted(self._objects)

    def read(self, path):
        obj = self.get_object(path)
        if type(obj) is tuple:
            return obj[0](obj[1])
        return obj.to_dict()

    def write(self, path, body):
        """Validate and apply a raw write body (bytes or str) to `path`."""
        obj = self.get_object(path)
        if type(obj) is tuple:
            if len(obj) < 3:
                raise ApiError(405, "%s is read-only" % path)
            obj[2](obj[1], parse_json(body))  # takes any JSON value, e.g. the API meter's array
        elif hasattr(obj, "write_body"):  # the same for an object
            obj.write_body(parse_json(body))
        elif hasattr(obj, "write"):
            keys = obj.writable_keys      # a method, or a tuple (class attribute)
            obj.write(as_object(parse_json(body), keys() if callable(keys) else keys))
        else:
            raise ApiError(405, "%s is read-only" % path)
