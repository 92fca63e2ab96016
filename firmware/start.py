# What main.py runs: pick the board, honour safe mode, build the application and run it.
#
# Safe mode (the button held right after reset on the ESP32; PVC_SAFE_MODE=1 or a file SAFE_MODE
# in the config folder on the Unix port) skips the application entirely: no tasks, no watchdog,
# the REPL is free for mpremote. A crash is logged to <config>/crash.txt and the board restarts.
import sys

_CRASH_FILE = "crash.txt"


def _env(name, default):
    try:
        import os
        return os.getenv(name) or default
    except (ImportError, AttributeError):
        return default


def make_board():
    if sys.platform == "esp32":
        from firmware.board.esp32 import Esp32Board
        return Esp32Board()
    from firmware.board.unix import UnixBoard
    return UnixBoard(_env("PVC_DIR", "config"))


def _log_crash(board, exc):
    sys.print_exception(exc)
    try:
        with open(board.fs_dir + "/" + _CRASH_FILE, "w") as f:
            sys.print_exception(exc, f)
    except OSError:
        pass


def run(board):
    import asyncio
    from firmware.app import App
    from firmware.clock import Clock
    if sys.platform == "esp32":
        host, port, speed = "0.0.0.0", 80, 1
    else:
        host = _env("PVC_HOST", "127.0.0.1")
        port = int(_env("PVC_PORT", "8080"))
        speed = int(_env("PVC_SPEED", "1"))
    app = App(board, Clock(speed))
    asyncio.run(app.run(host=host, port=port))


def _release():
    """Give the heap back to the REPL after Ctrl-C: the stopped tasks still sit in asyncio's
    queues and every firmware module in sys.modules. Without this, mpremote (a deploy) finds a
    full heap and fails with MemoryError."""
    import gc
    import asyncio
    asyncio.new_event_loop()          # drops the old loop's tasks and everything they hold
    core = getattr(asyncio, "core", None)
    if core is not None:              # the interrupted task and its context: the app's frames
        core.cur_task = None
        core._stop_task = None
        ctx = getattr(core, "_exc_context", None)
        if isinstance(ctx, dict):
            for key in ctx:
                ctx[key] = None
    for name in list(sys.modules):
        if name.startswith("firmware.") and name != "firmware.start":
            del sys.modules[name]
    # A package keeps its imported submodules as attributes: drop those references too.
    pkg = sys.modules.get("firmware")
    if pkg is not None:
        for key in list(pkg.__dict__):
            if not key.startswith("__") and key != "start":
                del pkg.__dict__[key]
    gc.collect()
    return gc.mem_free()


def main():
    if "lib" not in sys.path and sys.platform != "esp32":
        sys.path.append("lib")        # the ESP32 has /lib on its path already
    board = make_board()
    if board.safe_mode_requested():
        print("safe mode: application not started, the REPL is free")
        return
    try:
        run(board)
    except KeyboardInterrupt:
        # Ctrl-C from the REPL or mpremote: keep the board alive for the human at the REPL.
        hold = getattr(board, "wdt_hold", None)
        if hold is not None:
            hold()
        print("stopped by Ctrl-C: REPL, %d bytes free" % _release())
    except Exception as e:  # noqa: BLE001 - anything: log it and restart clean
        _log_crash(board, e)
        if sys.platform != "esp32":
            raise
        import time
        time.sleep_ms(3000)           # time to read the traceback on the console
        board.reset()
