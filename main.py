# firmware/ is found on sys.path: in / after `make deploy`, or after `make deploy ROMFS=1` in
# /rom/lib, which a ROMFS build of the ESP32 port mounts and puts on sys.path before boot.py runs
# (docs/board.md "ROMFS: code in flash"). Safe mode and the crash log live in firmware/start.py.
from firmware.start import main
main()
