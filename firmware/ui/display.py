# The display task: refreshes the current status page once a second, rotates pages every
# ROTATE_MS, and a button press shows the next page (rotation pauses for HOLD_MS after a press).
# The Errors page is skipped while there is nothing to show on it.
import time

from micropython import const

from firmware.ui import pages
from firmware.ui.status import fill

REFRESH_MS = const(1000)
ROTATE_MS = const(5000)
HOLD_MS = const(30000)
_POLL_MS = const(50)             # button poll: a press is >= 50 ms, this catches it


class DisplayTask:
    def __init__(self, app, display, button=None):
        self.app = app
        self.display = display
        self.button = button
        self.renderer = pages.Renderer(display.fb)
        self.status = pages.Status()
        self.page = pages.PAGE_POWER
        self._shown_ms = None         # when the current page was first shown
        self._held_until = None       # rotation paused after a button press
        self._btn_last = 0

    def _next_page(self):
        p = (self.page + 1) % pages.N_PAGES
        if p == pages.PAGE_ERRORS and not self.status.errors:
            p = (p + 1) % pages.N_PAGES
        return p

    def refresh(self, now_ms):
        fill(self.status, self.app, now_ms)
        if self._shown_ms is None:
            self._shown_ms = now_ms
        held = self._held_until is not None and time.ticks_diff(self._held_until, now_ms) > 0
        if not held and time.ticks_diff(now_ms, self._shown_ms) >= ROTATE_MS:
            self.page = self._next_page()
            self._shown_ms = now_ms
        self.renderer.render(self.status, self.page)
        self.display.show()

    def press(self, now_ms):
        """Button pressed: next page now, hold it for a while."""
        self.page = self._next_page()
        self._shown_ms = now_ms
        self._held_until = time.ticks_add(now_ms, HOLD_MS)
        self.refresh(now_ms)

    def poll_button(self, now_ms):
        if self.button is None:
            return
        v = self.button.value()
        if v and not self._btn_last:
            self.press(now_ms)
        self._btn_last = v

    async def run(self):
        clock = self.app.clock
        since_ms = REFRESH_MS
        while True:
            now = clock.ticks_ms()
            self.poll_button(now)
            if since_ms >= REFRESH_MS:
                try:
                    self.refresh(now)
                except OSError as e:  # I2C glitch: try again next second, keep the app running
                    print("display:", e)
                since_ms = 0
            await clock.sleep_ms(_POLL_MS)
            since_ms += _POLL_MS


def install(app):
    board = app.board
    display = board.display() if hasattr(board, "display") else None
    if display is None:
        print("display: none found")
        return []
    button = None
    has = getattr(board, "has_pin", None)
    if has is None or has("button"):
        button = board.pin("button", out=False)
    task = DisplayTask(app, display, button)
    app.display = task
    return [task.run()]
