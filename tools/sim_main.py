# `make sim`: the firmware on the MicroPython Unix port, against a simulated site (tools/simsite),
# serving the real API. Runs inside micropython; never deployed to a board.
#   micropython tools/sim_main.py --port 8080 --dir .sim --speed 1 --profile day1.csv
import sys

_root = __file__.rsplit("/", 2)[0] if __file__.count("/") >= 2 else "."
sys.path[:0] = [_root, _root + "/lib"]

import asyncio  # noqa: E402

from firmware.app import App  # noqa: E402
from firmware.board.unix import UnixBoard  # noqa: E402
from firmware.clock import Clock  # noqa: E402
from tools.simsite.wiring import make_installer  # noqa: E402


def parse_args(argv):
    opts = {"port": "8080", "dir": ".sim", "speed": "1", "profile": "", "start": "9", "battery": "0",
            "noise": "0", "host": "127.0.0.1",
            "grid-meter": "", "meter-model": "sdm630", "meter-slave": "1"}
    i = 1
    while i < len(argv):
        key = argv[i]
        if not key.startswith("--") or key[2:] not in opts or i + 1 >= len(argv):
            print("usage: sim_main.py [--port N] [--dir DIR] [--speed N] [--profile CSV] "
                  "[--start HOUR] [--battery 0|1] [--noise W] [--host ADDR] [--grid-meter PTY --meter-model M --meter-slave N]")
            sys.exit(2)
        opts[key[2:]] = argv[i + 1]
        i += 2
    return opts


def main():
    opts = parse_args(sys.argv)
    clock = Clock(int(opts["speed"]))
    board = UnixBoard(opts["dir"])
    app = App(board, clock, subsystems=(
        make_installer(opts["profile"] or None, int(opts["start"]) * 3600000,
                       opts["battery"] == "1", int(opts["noise"])),))
    if opts["grid-meter"]:  # docs/meters.md: a simulated RS485 meter as the grid meter
        from tools.sim_rs485 import use_rs485_grid_meter
        use_rs485_grid_meter(app, opts["grid-meter"], opts["meter-model"], int(opts["meter-slave"]))
    else:  # a grid meter left in SIM_DIR by an earlier GRID_METER run: simulated again
        from tools.sim_rs485 import drop_rs485_grid_meter
        drop_rs485_grid_meter(app)
    print("sim: flash in %s, speed x%s, profile %s from %s:00" % (
        opts["dir"], opts["speed"], opts["profile"] or "built-in day", opts["start"]))
    asyncio.run(app.run(host=opts["host"], port=int(opts["port"])))


main()
