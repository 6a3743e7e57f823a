"""The local GPU pool: concurrent jobs get different devices and give them back when they end,
including when they crash (simulated two-device pool; no GPU needed: only CUDA_VISIBLE_DEVICES)."""

import json
import signal
import subprocess
import sys
import time

import pytest

from anapart.runtime import devices
from support.common import popen_offline

JOB = r"""
import os, sys, time
from anapart.runtime import devices
dev = devices.claim(timeout_s=float(sys.argv[2]))
print(json.dumps({"dev": dev, "visible": os.environ["CUDA_VISIBLE_DEVICES"]}), flush=True)
open(sys.argv[1] + ".claimed", "w").close()
while os.path.exists(sys.argv[1]):  # hold the device while the 'running' file exists
    time.sleep(0.05)
if os.environ.get("CRASH"):
    os.kill(os.getpid(), 9)
""".replace("import os, sys, time", "import json, os, sys, time")


def start_job(tmp_path, name, pool, timeout_s=30.0, crash=False):
    running = tmp_path / name
    running.touch()
    env = {devices.ENV_VAR: pool, "CUDA_VISIBLE_DEVICES": None}
    if crash:
        env["CRASH"] = "1"
    proc = popen_offline([sys.executable, "-c", JOB, str(running), str(timeout_s)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, running


def wait_claimed(running, proc, timeout=30.0):
    t0 = time.monotonic()
    while not running.with_name(running.name + ".claimed").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, "the job never claimed a device"
        time.sleep(0.05)


def finish(proc, running):
    running.unlink()
    out, err = proc.communicate(timeout=30)
    return proc.returncode, json.loads(out.splitlines()[0]), err


@pytest.fixture
def pool(tmp_path):
    return devices.describe(tmp_path / "pool", 2)


def test_two_concurrent_jobs_get_different_devices_and_a_third_waits_for_one(tmp_path, pool):
    a, ra = start_job(tmp_path, "a", pool)
    b, rb = start_job(tmp_path, "b", pool)
    wait_claimed(ra, a)
    wait_claimed(rb, b)
    c, rc = start_job(tmp_path, "c", pool)  # the pool is full: c waits
    time.sleep(1.0)
    assert not rc.with_name("c.claimed").exists() and c.poll() is None
    code_a, got_a, _ = finish(proc=a, running=ra)  # a ends: its device goes to c
    wait_claimed(rc, c)
    code_b, got_b, _ = finish(b, rb)
    code_c, got_c, err_c = finish(c, rc)
    assert (code_a, code_b, code_c) == (0, 0, 0)
    assert {got_a["dev"], got_b["dev"]} == {"0", "1"}
    assert got_c["dev"] == got_a["dev"]
    assert all(g["dev"] == g["visible"] for g in (got_a, got_b, got_c))
    assert "all 2 GPUs of the pool are taken; waiting for one" in err_c


def test_a_crashed_job_releases_its_device(tmp_path, pool):
    a, ra = start_job(tmp_path, "a", pool, crash=True)
    b, rb = start_job(tmp_path, "b", pool)
    wait_claimed(ra, a)
    wait_claimed(rb, b)
    ra.unlink()  # a is SIGKILLed: no cleanup code of ours runs
    assert a.wait(timeout=30) == -signal.SIGKILL
    dev_a = json.loads(a.stdout.read().splitlines()[0])["dev"]
    c, rc = start_job(tmp_path, "c", pool, timeout_s=10.0)
    wait_claimed(rc, c)
    _, got_c, _ = finish(c, rc)
    _, got_b, _ = finish(b, rb)
    assert got_c["dev"] == dev_a != got_b["dev"]


def test_a_full_pool_times_out_with_a_clear_message(tmp_path, monkeypatch):
    pool = devices.describe(tmp_path / "pool", 1)
    a, ra = start_job(tmp_path, "a", pool)
    wait_claimed(ra, a)
    env = {devices.ENV_VAR: pool}
    monkeypatch.setattr(devices, "WAIT_S", 0.05)
    with pytest.raises(TimeoutError, match="all 1 GPUs of the pool .* stayed taken for 0.3 s"):
        devices.claim(env, timeout_s=0.3)
    finish(a, ra)
    try:  # now free: this process takes it, and a second claim keeps the same device
        assert devices.claim(env, timeout_s=5) == "0" == devices.claim(env) == env["CUDA_VISIBLE_DEVICES"]
    finally:
        devices.release()


def test_no_pool_changes_nothing_and_the_pool_maps_onto_visible_devices(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert devices.claim(env) is None and env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    spec = json.loads(devices.describe(tmp_path / "p", 2, visible="2,3"))
    assert spec["devices"] == ["2", "3"]
    with pytest.raises(ValueError, match="a pool of 3 GPUs, but CUDA_VISIBLE_DEVICES names only 2: 2,3"):
        devices.describe(tmp_path / "p", 3, visible="2,3")
