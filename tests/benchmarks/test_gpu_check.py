"""``benchmarks/gpu_check.py --cpu-smoke``: the GPU check's code paths run on the CPU and write
their JSON and Markdown (the GPU numbers themselves come only from a GPU machine)."""

import json
import sys

import pytest
import yaml

from support.common import REPO, run_offline

pytestmark = pytest.mark.workflow  # a Snakemake dry run of the tiny DAG inside: ~15 s of CPU


def test_cpu_smoke_runs_every_part_and_writes_json_and_markdown(tmp_path):
    proc = run_offline([sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--cpu-smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    nets = yaml.safe_load((REPO / "config/paper.yaml").read_text())["classify"]["nets"]
    assert res["mode"] == "cpu-smoke" and not res["amp_on"]  # the CPU trains in float32
    assert [r["net"] for r in res["throughput"]] == nets
    for r in res["throughput"]:
        assert r["ours_img_s"] > 0 and r["bare_img_s"] > 0
        assert r["ratio_bare_over_ours"] == pytest.approx(r["bare_img_s"] / r["ours_img_s"], rel=0.02)
        assert r["peak_gib"] is None  # no GPU memory on the CPU
    st = res["store"]
    assert st["slices"] == 256 and st["data_img_s"] > 0 and set(st["data_over_net"]) == set(nets)
    # killed after the first epoch and resumed: the uninterrupted run's weights, bit for bit
    assert res["resume"]["bit_identical"] and res["resume"]["max_abs_diff"] == 0
    assert res["dag"]["ok"] and res["dag"]["dry_run"] and res["dag"]["device"] == "cpu"
    md = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {n} | 32 | 2 |" in md for n in nets) and "bit-identical **True**" in md


def test_without_cuda_the_full_check_refuses_with_the_smoke_hint(tmp_path):
    pytest.importorskip("torch")
    import torch
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the full check would run")
    proc = run_offline([sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA device: run with --cpu-smoke" in proc.stderr
