"""End-to-end deploy: the real mpremote against a Unix-port "board" on a pty (tools/pty_board.py).
The deployed .mpy tree boots on the Unix port and answers the API; a second deploy interrupts the
running application, replaces the code and keeps the board's config and pin map.

ROMFS (make deploy ROMFS=1): the Unix port has no vfs.rom_ioctl, so the pty board's ROMFS
partition is a stand-in (pty_board.py --romfs-partition: the rom_ioctl calls mpremote makes, a
file as the partition, the mount at /rom with /rom/lib on sys.path at power-up). What runs for
real: our image build, the partition check, mpremote's `romfs deploy` protocol, the board's
filesystem without firmware/, and the firmware booting from the mounted image. Not tested here:
the ESP32 port's own rom_ioctl (flash erase/write) and its memory-mapped execution in place."""
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from simproc import free_port

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def api(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, "/" + path, body=body)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def wait_api(port, proc, timeout_s=30):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        assert proc.poll() is None, "the pty board died"
        try:
            return api(port, "GET", "system/state")
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the deployed firmware did not answer within %d s" % timeout_s)


def deploy(tty, *extra, romfs=False, ok=True):
    # The documented command: make deploy PORT=<serial port> [ROMFS=1] [DEPLOY_ARGS=...]
    cmd = ["make", "--no-print-directory", "-C", str(ROOT), "deploy", "PORT=%s" % tty]
    if romfs:
        cmd.append("ROMFS=1")
    if extra:
        cmd.append("DEPLOY_ARGS=%s" % " ".join(extra))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def start_board(tmp_path, board_dir, port, *extra):
    tty = tmp_path / "board.tty"
    env = dict(os.environ, PVC_PORT=str(port))
    # 200wK: the whole firmware does not fit the 100wK target today (test_heap_hour.py).
    bridge = subprocess.Popen([PY, str(ROOT / "tools" / "pty_board.py"), "--dir", str(board_dir),
                               "--link", str(tty), "--heap", "200wK",
                               "--log", str(tmp_path / "console.log")] + list(extra), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    assert bridge.stdout.readline().startswith("/dev/pts/")
    return bridge, tty


def stop_board(bridge):
    os.killpg(bridge.pid, signal.SIGTERM)
    try:
        bridge.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(bridge.pid, signal.SIGKILL)
        bridge.wait()


def flash_files(board_dir):
    return {str(p.relative_to(board_dir)) for p in board_dir.rglob("*") if p.is_file()}


def reset_board(tty):
    # The pty board's reset: its process ends and starts again (an ESP32: machine.reset()).
    subprocess.run([str(ROOT / ".venv" / "bin" / "mpremote"), "connect", str(tty), "resume",
                    "exec", "import sys\nsys.exit(0)"], capture_output=True, timeout=60)


def cut_off_deploy(tty, tmp_path):
    """A deploy whose code copy stops half way (cable pulled, power cut): tools/deploy.py run
    here with mpremote's recursive copy given half of the compiled tree, then cut off."""
    import importlib.util
    import shutil
    spec = importlib.util.spec_from_file_location("deploy_tool", ROOT / "tools" / "deploy.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    real_run = tool.Board.run

    def run(board, *args, check=True):
        if "-r" in args:
            half = tmp_path / "half" / "firmware"
            shutil.copytree(args[args.index("-r") + 1], half)
            for i, f in enumerate(sorted(half.rglob("*.mpy"))):
                if i % 2:
                    f.unlink()
            args = list(args)
            args[args.index("-r") + 1] = str(half)
            real_run(board, *args, check=check)
            raise SystemExit("cut off")
        return real_run(board, *args, check=check)

    tool.Board.run = run
    try:
        tool.deploy(str(tty))
        raise AssertionError("the deploy was not cut off")
    except SystemExit as e:
        assert str(e) == "cut off"


def test_deploy_to_pty_board_boots_and_keeps_config(tmp_path):
    board_dir = tmp_path / "board"
    (board_dir / "firmware").mkdir(parents=True)
    (board_dir / "firmware" / "stale.py").write_text("raise RuntimeError('old code')\n")
    (board_dir / "board.json").write_text('{"pins": {"contactor": {"gpio": 25}}}')
    port = free_port()
    bridge, tty = start_board(tmp_path, board_dir, port)
    try:
        out = deploy(tty)
        assert "keeping the board's board.json" in out
        assert "board runs MicroPython on linux" in out
        status, body = wait_api(port, bridge)
        assert status == 200 and "uptime_ms" in json.loads(body)
        # What is on the "flash": compiled code only, the old tree gone, the pin map kept.
        files = flash_files(board_dir)
        assert "firmware/app.mpy" in files and "firmware/api/http.mpy" in files
        assert not [f for f in files if f.startswith("firmware/") and f.endswith(".py")]
        assert not [f for f in files if f.startswith("lib/")]   # no third-party code any more
        assert {"boot.py", "main.py"} <= files
        assert json.loads((board_dir / "board.json").read_text())["pins"]["contactor"]["gpio"] == 25
        # Configure it over the API, then deploy again over the running application.
        assert api(port, "PUT", "power_manager/config", '{"target_power_from_grid": 123}')[0] == 200
        assert api(port, "GET", "setup")[0] == 200
        deploy(tty)
        status, body = wait_api(port, bridge)
        cfg = json.loads(api(port, "GET", "power_manager/config")[1])
        assert cfg["target_power_from_grid"] == 123      # the config survived the deploy
        assert (board_dir / "config").is_dir()
        cut_off_deploy(tty, tmp_path)
        # Power cycle: the board boots the firmware it had, with its config.
        reset_board(tty)
        wait_api(port, bridge)
        cfg = json.loads(api(port, "GET", "power_manager/config")[1])
        assert cfg["target_power_from_grid"] == 123
        # --reset-config is the one way to drop it.
        deploy(tty, "--reset-config")
        wait_api(port, bridge)
        cfg = json.loads(api(port, "GET", "power_manager/config")[1])
        assert cfg["target_power_from_grid"] == 0
        # The half copy of the cut-off deploy is gone, nothing else is left beside the code.
        assert not [f for f in flash_files(board_dir) if f.startswith("firmware.")]
    finally:
        stop_board(bridge)


def test_romfs_deploy_boots_from_rom_and_switches_back_and_forth(tmp_path):
    board_dir = tmp_path / "board"
    (board_dir / "firmware").mkdir(parents=True)
    (board_dir / "firmware" / "start.py").write_text("raise RuntimeError('old code')\n")
    partition = tmp_path / "romfs.partition"
    port = free_port()
    bridge, tty = start_board(tmp_path, board_dir, port, "--romfs-partition", str(partition))
    try:
        out = deploy(tty, romfs=True)
        assert "ROMFS partition of 131072 bytes" in out and "ROMFS image deployed" in out
        status, body = wait_api(port, bridge)
        assert status == 200 and "uptime_ms" in json.loads(body)
        # The code is in the partition only: no firmware/ on the flash (the stale one, which
        # would shadow /rom/lib/firmware, is gone), boot.py and main.py as always.
        files = flash_files(board_dir)
        assert not [f for f in files if f.startswith(("firmware/", "lib/"))], files
        assert {"boot.py", "main.py", "board.json"} <= files
        image = (ROOT / "build" / "firmware.romfs").read_bytes()
        assert partition.read_bytes()[:len(image)] == image
        assert api(port, "PUT", "power_manager/config", '{"target_power_from_grid": 77}')[0] == 200
        # Back to the normal deploy: its firmware/ comes first on sys.path; the ROMFS stays.
        deploy(tty)
        wait_api(port, bridge)
        assert "firmware/app.mpy" in flash_files(board_dir)
        assert partition.read_bytes()[:len(image)] == image
        cfg = json.loads(api(port, "GET", "power_manager/config")[1])
        assert cfg["target_power_from_grid"] == 77
        # And to ROMFS again: firmware/ removed, the config kept.
        deploy(tty, romfs=True)
        wait_api(port, bridge)
        assert not [f for f in flash_files(board_dir) if f.startswith("firmware/")]
        cfg = json.loads(api(port, "GET", "power_manager/config")[1])
        assert cfg["target_power_from_grid"] == 77
        assert b"old code" not in (tmp_path / "console.log").read_bytes()
        # Safe mode works from /rom too: the board (reset by ending its process) skips the app.
        (board_dir / "config" / "SAFE_MODE").write_text("")
        subprocess.run([str(ROOT / ".venv" / "bin" / "mpremote"), "connect", str(tty), "resume",
                        "exec", "import sys\nsys.exit(0)"], capture_output=True, timeout=60)
        end = time.monotonic() + 20
        while b"safe mode: application not started" not in (tmp_path / "console.log").read_bytes():
            assert time.monotonic() < end, "no safe mode after the reset"
            time.sleep(0.2)
    finally:
        stop_board(bridge)


def test_romfs_deploy_refuses_a_board_without_romfs_partition(tmp_path):
    board_dir = tmp_path / "board"
    (board_dir / "firmware").mkdir(parents=True)
    (board_dir / "firmware" / "keep.mpy").write_bytes(b"M")
    bridge, tty = start_board(tmp_path, board_dir, free_port(), "--no-main")
    try:
        out = deploy(tty, romfs=True, ok=False)
        assert "no ROMFS partition" in out and "BOARD_VARIANT=ROMFS" in out, out
        assert "nothing on the board was changed" in out
        assert flash_files(board_dir) == {"firmware/keep.mpy"}
    finally:
        stop_board(bridge)


def test_refused_romfs_deploy_leaves_the_running_firmware_running(tmp_path):
    """make deploy ROMFS=1 to a board without a ROMFS partition (docs/board.md): refused, and the
    firmware that ran before runs again. mpremote's Ctrl-C had stopped it at the first contact
    and the refusal left the board in the REPL: no API, no control loop, until a manual reset."""
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    port = free_port()
    bridge, tty = start_board(tmp_path, board_dir, port)
    try:
        deploy(tty)
        assert wait_api(port, bridge)[0] == 200
        out = deploy(tty, romfs=True, ok=False)
        assert "no ROMFS partition" in out, out
        assert wait_api(port, bridge)[0] == 200
    finally:
        stop_board(bridge)
