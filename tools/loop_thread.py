"""An asyncio loop in a daemon thread, for the CPython test peers (meter and wallbox simulators).

A subclass sets `_ready`, `_loop`, `_thread`, `error` (see init_loop_thread) and provides
`async _main()`, which creates `self._stop_ev`, sets `self._ready` once it serves and returns
when `self._stop_ev` is set."""
import asyncio
import threading


class LoopThread:
    def init_loop_thread(self):
        self._loop = None
        self._thread = None
        self._ready = threading.Event()
        self._stop_ev = None
        self.error = None

    def start(self):
        def target():
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(self._main())
            except Exception as e:  # noqa: BLE001 - reported to the starter
                self.error = e
                self._ready.set()
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self.error:
            raise self.error
        return self

    def stop(self):
        if self._loop and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_ev.set)
            self._thread.join(5)
