# Runs inside micropython (-X heapsize=100wK): the firmware as deployed (HTTP, control, meter slots,
# MQTT, display, Wi-Fi manager, watchdog) for a simulated time, measuring the heap. The site is
# what tools/bench_heap.py, which drives this, put on the flash (DIR) and on the wire: by default
# an SDM630 grid meter and a Heidelberg wallbox on one simulated RS485 bus, the contactor, a
# meter slot fed over HTTP; the simulated site of `make sim` is not loaded: it is not firmware
# and would not fit next to it.
#   micropython -X heapsize=100wK tools/heap_probe.py DIR HTTP_PORT SPEED SECONDS [MQTT_PORT
#       [DISCOVERY [ROMFS_IMAGE BUFFER_BYTES]]]
#   (MQTT_PORT 0: no MQTT; DISCOVERY 1: Home Assistant discovery on; ROMFS_IMAGE: the firmware
#   is not in the tree but in this ROMFS image, mounted at /rom as a ROMFS build of the ESP32
#   port does)
import sys

_root = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else "."
sys.path[:0] = [_root, _root + "/lib"]

import gc  # noqa: E402


def _mount_romfs(path, buffer_bytes):
    """Mount the ROMFS image at /rom with /rom/lib on sys.path (what the ESP32 port does at boot,
    micropython PR #16857); returns the heap the image itself takes.

    On the ESP32 the image is memory-mapped flash and costs no heap. The Unix port has no flash to
    map, so the image sits in one bytearray, allocated first (the bottom of the heap: it never
    moves and fragments nothing). tools/bench_heap.py enlarges the heap by what this returns and
    subtracts it from every heap figure. buffer_bytes (>= the image) is chosen there so that the
    allocation is a whole number of GC allocation-table steps."""
    import vfs
    gc.collect()
    before = gc.mem_alloc()
    buf = bytearray(buffer_bytes)
    f = open(path, "rb")
    f.readinto(buf)
    f.close()
    del f
    gc.collect()
    image_heap = gc.mem_alloc() - before
    vfs.mount(vfs.VfsRom(buf), "/rom")
    sys.path.append("/rom/lib")
    return image_heap


_IMAGE_HEAP = _mount_romfs(sys.argv[7], int(sys.argv[8])) if len(sys.argv) > 8 else 0

import time  # noqa: E402
import asyncio  # noqa: E402


def main():
    fs_dir, http_port, speed, sim_s = sys.argv[1:5]
    mqtt_port = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    discovery = len(sys.argv) > 6 and sys.argv[6] == "1"
    http_port, speed, sim_s = int(http_port), int(speed), int(sim_s)
    gc.collect()
    boot_used = gc.mem_alloc()
    from firmware.app import App
    from firmware.board.unix import UnixBoard
    from firmware.clock import Clock
    clock = Clock(speed)
    app = App(UnixBoard(fs_dir), clock)
    if mqtt_port and not hasattr(app, "mqtt"):
        from firmware.mqtt import service       # until the app installs MQTT itself
        app.tasks.extend(service.install(app))
    if mqtt_port:
        app.registry.write("mqtt/config", '{"enable": true, "broker_host": "127.0.0.1", '
                           '"broker_port": %d, "interval": 1, "discovery": %s}'
                           % (mqtt_port, "true" if discovery else "false"))
    gc.collect()
    stats = {"heap": gc.mem_alloc() + gc.mem_free(), "boot_used": boot_used,
             "built_used": gc.mem_alloc(), "peak_used": 0, "samples": 0,
             "romfs_image_heap": _IMAGE_HEAP,
             # a GC block is 4 words: 32 B on this 64-bit host, 16 B on the ESP32
             "gc_block_bytes": 32 if sys.maxsize > 2 ** 32 else 16}
    # Every key the run fills in exists from the start (None until measured): a dict that grows
    # at the end of the hour needs a larger table just when the heap may be full, and a
    # MemoryError there would end the monitor and leave the probe running forever.
    for key in ("start_used", "start_free", "early_min", "late_min", "end_used", "end_free",
                "sim_s", "steps", "max_period_ms", "display_frames", "wdt_feeds", "fw_peak_live",
                "fw_min_free"):
        stats[key] = None

    async def monitor():
        start = clock.ticks_ms()
        started = False
        while True:
            await asyncio.sleep_ms(50)          # real ms: ~20 samples per second
            gc.collect()
            used = gc.mem_alloc()
            stats["samples"] += 1
            if used > stats["peak_used"]:
                stats["peak_used"] = used
            elapsed = time.ticks_diff(clock.ticks_ms(), start)
            if not started and elapsed >= 10000:
                started = True                  # 10 s simulated: every task is up
                stats["start_used"] = used
                stats["start_free"] = gc.mem_free()
            # The floor of the live heap (its lowest samples) early and late in the run: a leak
            # raises the floor; transients (an MQTT pass, a request in flight, start-up work
            # that takes longer in real time on a loaded machine) only raise single samples.
            if 120000 <= elapsed < sim_s * 500:
                if stats["early_min"] is None or used < stats["early_min"]:
                    stats["early_min"] = used
            elif elapsed >= sim_s * 750 and (stats["late_min"] is None
                                             or used < stats["late_min"]):
                stats["late_min"] = used
            if elapsed >= sim_s * 1000:
                stats["end_used"] = used
                stats["end_free"] = gc.mem_free()
                stats["sim_s"] = elapsed // 1000
                stats["steps"] = app.control.steps
                stats["max_period_ms"] = app.control.max_period_ms
                stats["display_frames"] = getattr(getattr(app, "display", None), "display",
                                                  None).frames if hasattr(app, "display") else 0
                stats["wdt_feeds"] = app.board.wdt_feeds
                mem = getattr(app, "memory", None)
                if mem is not None:
                    stats["fw_peak_live"] = mem.peak_live_bytes
                    stats["fw_min_free"] = mem.min_free_bytes
                print("HEAP", stats)
                import micropython
                micropython.mem_info()
                sys.exit(0)

    async def run():
        asyncio.create_task(monitor())
        await app.run(host="127.0.0.1", port=http_port)

    asyncio.run(run())


main()
