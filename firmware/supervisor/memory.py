# Heap housekeeping: a collection every COLLECT_MS, and system/memory for the API.
#
# Left alone, MicroPython collects only when the heap is full: short-lived garbage then spreads
# over the whole heap between the long-lived objects, and after the collection the free memory
# is in small holes (on a 100 KB heap we measured no free block above 256 bytes, so a 500-byte
# HTTP response failed with 15 KB "free"). Collecting once a second keeps allocations packed at
# the bottom of the heap (the MicroPython docs' advice against fragmentation); it costs a few ms.
import gc
import time

from micropython import const

COLLECT_MS = const(1000)


class Memory:
    def __init__(self):
        self.live_bytes = 0          # in use right after the last collection
        self.peak_live_bytes = 0
        self.min_free_bytes = None   # lowest free heap seen right after a collection
        self.collect_us = 0          # duration of the last collection
        self.collections = 0

    def to_dict(self):
        free = gc.mem_free()
        used = gc.mem_alloc()
        return {"heap_total": free + used, "heap_free": free, "live_bytes": self.live_bytes,
                "peak_live_bytes": self.peak_live_bytes, "min_free_bytes": self.min_free_bytes,
                "collect_us": self.collect_us, "collections": self.collections}

    async def run(self, clock):
        while True:
            t = time.ticks_us()
            gc.collect()
            self.collect_us = time.ticks_diff(time.ticks_us(), t)
            self.collections += 1
            used = gc.mem_alloc()
            free = gc.mem_free()
            self.live_bytes = used
            if used > self.peak_live_bytes:
                self.peak_live_bytes = used
            if self.min_free_bytes is None or free < self.min_free_bytes:
                self.min_free_bytes = free
            await clock.sleep_ms(COLLECT_MS)


def install(app):
    mem = Memory()
    app.memory = mem
    app.registry.add("system/memory", mem)
    return [mem.run(app.clock)]
