"""A real Modbus RTU peer for tests: socat pty pair + tools/meter_sim.py (pymodbus) in a thread."""
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import meter_sim  # noqa: E402


class Peer:
    def __init__(self, tmp_path, meters, baud=None, delay_ms=0):
        self.dir = tmp_path
        self.a = str(tmp_path / "fw")   # the firmware's end
        self.b = str(tmp_path / "sim")  # the simulator's end
        self.socat = subprocess.Popen(
            ["socat", "pty,raw,echo=0,link=" + self.a, "pty,raw,echo=0,link=" + self.b],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(self.a) and os.path.exists(self.b):
                break
            time.sleep(0.02)
        # model, or (model, missing quantities)
        self.meters = {sid: (meter_sim.MeterState(m) if isinstance(m, str)
                             else meter_sim.MeterState(m[0], missing=m[1]))
                       for sid, m in meters.items()}
        self.sim = meter_sim.Simulator(self.b, self.meters, baud, delay_ms).start()
        self.proxy = self.sim.proxy

    def fault(self, mode, count=None):
        self.proxy.fault_count = count
        self.proxy.fault = mode

    def close(self):
        self.sim.stop()
        self.socat.terminate()
        self.socat.wait(5)
