# HTTP JSON API on Microdot: every registry path is served as GET /<path>, written by PUT/POST.
from microdot import Microdot, Request

from firmware.api.registry import ApiError, MAX_BODY_BYTES

_TEXT = {"Content-Type": "text/plain; charset=UTF-8"}


def make_app(registry):
    Request.max_content_length = MAX_BODY_BYTES  # Microdot answers 413 above this
    app = Microdot()

    @app.route("/<path:path>", methods=["GET", "PUT", "POST"])
    async def handle(request, path):
        path = path.rstrip("/")
        try:
            if request.method == "GET":
                return registry.read(path)
            registry.write(path, request.body)
            return "", 200, _TEXT
        except ApiError as e:
            return e.message + "\n", e.status, _TEXT

    @app.errorhandler(413)
    async def too_large(request):
        return "Payload too large: at most %d bytes\n" % MAX_BODY_BYTES, 413, _TEXT

    return app
