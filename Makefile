# Everything a developer or CI needs: `make sim` runs the firmware on this machine,
# `make test` runs the whole suite. Both set themselves up on a fresh clone.
VENV     ?= .venv
PY       := $(VENV)/bin/python
MP       := $(VENV)/bin/micropython
PORT     ?= 8080
SIM_DIR  ?= .sim
SIM_SPEED ?= 1
SIM_PROFILE ?=
SIM_START ?= 9
SIM_BATTERY ?= 0
SIM_NOISE ?= 0
# make sim GRID_METER=/tmp/m/a: the grid meter slot read over RS485 from that pty (docs/meters.md)
GRID_METER ?=
METER_MODEL ?= sdm630
METER_SLAVE ?= 1
HEAP     ?= 256wK

.PHONY: setup sim test bench bench-seeds deploy bench-heap clean
.DEFAULT_GOAL := help

help:
	@echo "make sim    run the firmware on the MicroPython Unix port with a simulated site (http://127.0.0.1:$(PORT))"
	@echo "make test   run the whole test suite"
	@echo "make bench  control-quality benchmark on the PV days in ../shared/bench/profiles"
	@echo "make bench-seeds   the same days with seeds 1-5 (SEEDS=1,3,7): spread of our controller's results"
	@echo "make deploy PORT=/dev/ttyUSB0   compile to .mpy and copy to an ESP32 (docs/board.md; ROMFS=1: into its ROMFS partition)"
	@echo "make bench-heap                 heap of the deployed firmware over a simulated hour, from ROMFS and from the filesystem (full RS485 site)"

setup: $(VENV)/.stamp

$(VENV)/.stamp: requirements-dev.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

sim: setup
	$(MP) -X heapsize=$(HEAP) tools/sim_main.py --port $(PORT) --dir $(SIM_DIR) --speed $(SIM_SPEED) --profile "$(SIM_PROFILE)" --start $(SIM_START) --battery $(SIM_BATTERY) --noise $(SIM_NOISE) \
	  $(if $(GRID_METER),--grid-meter $(GRID_METER) --meter-model $(METER_MODEL) --meter-slave $(METER_SLAVE))

# Control-quality benchmark (docs/benchmark.md): PROFILES='path/*.csv' to use other days,
# BENCH_ARGS='--battery --cfg cloud_filter_mode=1 ...' for more settings / tuning runs.
PROFILES ?=
BENCH_ARGS ?=
bench: setup
	$(PY) tools/bench_pv.py $(if $(strip $(PROFILES)),--profiles $(PROFILES)) $(BENCH_ARGS)

# Robustness (docs/benchmark.md "Seed spread"): our controller once per seed of the house-load
# model and EV draw noise; `make bench` is seed 1. Writes only bench/out/seeds.json.
SEEDS ?= 1-5
bench-seeds: setup
	$(PY) tools/bench_pv.py --seeds $(SEEDS) $(if $(strip $(PROFILES)),--profiles $(PROFILES)) $(BENCH_ARGS)

test: setup
	$(VENV)/bin/pytest -q host_tests

# Deploy to a board (docs/board.md): PORT is the serial port here, e.g. PORT=/dev/ttyUSB0.
# DEPLOY_ARGS='--reset-config' deletes the board's settings, '--pin-map' overwrites board.json.
# ROMFS=1: the code into the board's ROMFS partition, run from flash (docs/board.md).
DEPLOY_ARGS ?=
ROMFS ?=
deploy: setup
	$(PY) tools/deploy.py --port $(PORT) $(if $(filter 1,$(ROMFS)),--romfs) $(DEPLOY_ARGS)

# Heap of the firmware as deployed under -X heapsize (docs/board.md): by default one hour from
# ROMFS and one from the filesystem, and a summary; HEAP_ARGS="--romfs", "--heap 200wK", "--no-rs485".
HEAP_ARGS ?= --both
bench-heap: setup
	$(PY) tools/bench_heap.py $(HEAP_ARGS)

clean:
	rm -rf build $(SIM_DIR) bench/out
