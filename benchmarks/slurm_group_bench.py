"""Grouped vs one-job-per-classifier SLURM submission of a tiny replicate grid (issue 35).

Boots the tests' throw-away single-node SLURM (tests/support/slurm_cluster.py; root, slurm-wlm and
munge installed), builds the grid's upstream (cohort, folds, segmentation, crops) locally once,
then trains the grid's classifiers through ``--profile profiles/slurm`` twice from the same
upstream: ungrouped (``--group-components train_batch=1``: one SLURM job per classifier) and as
the profile groups them. Reports sbatch calls and wall time of each.

    python benchmarks/slurm_group_bench.py [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import slurm_cluster  # noqa: E402
from support.common import run_offline  # noqa: E402
from support.workflow import workflow_copy  # noqa: E402

GRID = {  # over config/test.yaml: 2 folds x 2 seeds x 1 net x 2 formats x 1 fraction = 8 classifiers
    "replicates": {"folds": 2, "repeats": 1, "seeds": [0, 1]},
    "classify": {"nets": ["mobilenetv3_large_100"], "formats": ["full", "seg112"]},
    "split": {"fractions": [25]},
    "cam": {"fractions": [25]},
    "staging": {"enabled": False},
    "device": "cpu",
}


def targets() -> list[str]:
    return [f"results/replicates/r0/k{k}/s{s}/classify/mobilenetv3_large_100/{f}/f25/model.pt"
            for k in (0, 1) for s in (0, 1) for f in ("full", "seg112")]


def smk(wd: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", "config/test.yaml", "grid.yaml", *args]
    t0 = time.monotonic()
    proc = run_offline(cmd, cwd=wd, capture_output=True, text=True, env=env, timeout=3600)
    return proc, time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    a = ap.parse_args(argv)
    if not slurm_cluster.installed():
        ap.error("SLURM (slurm-wlm, munge) is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="slurm-group-"))
    wd = workflow_copy(tmp / "wf")
    (wd / "grid.yaml").write_text(yaml.safe_dump(GRID))
    text = (wd / "profiles/slurm/config.yaml").read_text()
    (wd / "profiles/slurm/config.yaml").write_text(
        text.replace('# slurm_partition: "CHANGE_ME_partition"', 'slurm_partition: "ci"'))
    crops = [f"results/replicates/r0/k{k}/crops/{f}/index.csv" for k in (0, 1) for f in ("full", "seg112")]
    proc, wall = smk(wd, "-c2", "--", *crops)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 1
    print(f"upstream built locally in {wall:.0f} s", flush=True)
    c = slurm_cluster.SingleNodeSlurm(tmp / "slurm")
    c.start()
    results = {}
    try:
        env = {"SLURM_CONF": c.env["SLURM_CONF"]}
        for name, extra in (("one job per classifier", ["--group-components", "train_batch=1"]),
                            ("grouped (profile)", [])):
            for t in targets():
                (wd / t).unlink(missing_ok=True)
            proc, wall = smk(wd, "--profile", "profiles/slurm", "--verbose", "--slurm-init-seconds-before-status-checks",
                             "2", "--slurm-status-command", "squeue", *extra, "--", *targets(), env=env)
            out = proc.stdout + proc.stderr
            sbatch = [ln for ln in out.splitlines() if "sbatch call:" in ln]
            results[name] = {"exit": proc.returncode, "sbatch_calls": len(sbatch), "wall_s": round(wall, 1),
                             "gpus_requested": sum("--gpus=1" in s for s in sbatch),
                             "built": sum((wd / t).exists() for t in targets())}
            print(name, results[name], flush=True)
            if proc.returncode:
                print(out[-4000:])
    finally:
        c.stop()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "slurm_group.json").write_text(json.dumps({"classifiers": len(targets()), "runs": results}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r["exit"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
