import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest


@pytest.fixture
def sim(tmp_path):
    """A running firmware (tools/sim_main.py) with its flash in a temp folder."""
    from simproc import Sim
    procs = []

    def start(**kw):
        s = Sim(kw.pop("sim_dir", tmp_path / "flash"), **kw)
        procs.append(s)
        return s
    yield start
    for s in procs:
        s.stop()
