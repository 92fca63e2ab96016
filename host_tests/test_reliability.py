"""Reliability: power loss while writing config (kill -9 in a write loop, 200 boots)."""
import os
import random
import signal
import subprocess

from mp import MICROPYTHON, ROOT

# Each boot: load the config like the firmware does, report what it found, then rewrite the
# config as fast as it can (alternating contents) until it is killed.
_WRITER = """
import sys, os
sys.path[:0] = [%r]
from firmware.api.config import ConfigObject, Field, INT, STR
from firmware.api.store import Store
store = Store(sys.argv[1] if len(sys.argv) > 1 else %r)
obj = ConfigObject('test/config', [Field('gen', INT, 0, 0, 1 << 30), Field('pad', STR, '', hi=4000)],
                   store)
obj.load()
try:
    os.stat(store._path('test/config') + '.tmp')
    tmp = 1
except OSError:
    tmp = 0
gen = obj['gen']
pad = obj['pad']
ok = obj.load_error is None and pad == 'ab'[gen & 1] * 1500 if gen else obj.load_error is None
print('BOOT', gen, 1 if ok else 0, tmp, obj.load_error)
sys.stdout.flush() if hasattr(sys.stdout, 'flush') else None
while True:
    gen += 1
    obj.write({'gen': gen, 'pad': 'ab'[gen & 1] * 1500})
"""


def test_kill_9_during_config_writes_200_boots(tmp_path):
    rnd = random.Random(1234)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER % (str(ROOT), str(tmp_path / "flash")))
    last_gen = 0
    mid_write = 0
    for boot in range(201):
        proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=100wK", str(script)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        line = proc.stdout.readline()
        parts = line.split()
        assert parts[:1] == ["BOOT"], (line, proc.stderr.read() if proc.poll() else "")
        gen, ok, tmp = int(parts[1]), parts[2], parts[3]
        # Readable, and either the last complete write or an older one: never a mix.
        assert ok == "1", "boot %d found a broken config: %s" % (boot, line)
        assert gen >= last_gen, "boot %d went back from gen %d to %d" % (boot, last_gen, gen)
        if boot > 0:
            assert gen > 0, "boot %d lost the config" % boot
        last_gen = gen
        mid_write += tmp == "1"
        if boot == 200:
            proc.kill()
            proc.wait()
            break
        # Power loss at a random point of the write loop.
        os.waitpid(proc.pid, os.WNOHANG)
        import time
        time.sleep(rnd.uniform(0.0005, 0.02))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    # The kills landed inside writes often enough to mean something (a .tmp was left behind).
    assert mid_write >= 20, mid_write
    assert last_gen > 200
