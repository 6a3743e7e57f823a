"""The SLURM profile, submitted to a real single-node SLURM (munge + slurmctld + slurmd).

Boots a throw-away cluster (installing Debian's slurm-wlm and munge when missing, as root),
builds one classifier's target of the tiny config through ``snakemake --profile
profiles/slurm``, and checks the outputs and what each job asked SLURM for: training jobs one
GPU, every other job none. In the same run the classifier's single epoch is made longer than the
1-minute runtime of its first attempt (larger inputs, smaller batches): SLURM's warning signal cuts
it mid-epoch, and it must resume at the batch where it stopped and finish within the profile's
retries. Then installs the profile as ``~/.config/snakemake/slurm`` and checks that ``--profile
slurm`` (the bare name users type) finds it. Daemons are stopped by PID.

Under CI (``CI`` set, as ``.ci/run`` does) a SLURM that cannot be installed, booted or is busy
fails the test instead of skipping it; elsewhere it skips. Everything the tests write goes to
pytest's temporary folders (the cluster's /etc/slurm config excepted, removed when it stops).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support import slurm_cluster
from support.common import REPO, run_offline
from support.workflow import workflow_copy

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

TARGET = "results/classify/mobilenetv3_large_100/seg112/f100/metrics.json"
TRAINING_RULES = {"seg_train", "classify_train", "staging_train", "staging_train_ablation"}


def unavailable(reason: str) -> None:
    """No SLURM to test against: a failure under CI (a green CI must have run these tests), else a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not slurm_cluster.installed():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            unavailable("SLURM (slurm-wlm, munge) is not installed and cannot be installed here (needs root + apt-get)")
        slurm_cluster.install()
    c = slurm_cluster.SingleNodeSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        try:
            c.start()
        except slurm_cluster.SlurmInUse as e:
            unavailable(f"SLURM is busy: {e}")
        pids = {name: p.pid for name, p in c.procs.items()}
        yield c
    finally:
        c.stop()
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"


def fill_in_profile(src: Path, dst: Path, partition: str) -> Path:
    """What the README tells a user to do: uncomment the partition placeholder and set it."""
    dst.mkdir(parents=True, exist_ok=True)
    text = (src / "config.yaml").read_text()
    placeholder = '# slurm_partition: "CHANGE_ME_partition"'
    assert placeholder in text, "the profile's partition placeholder moved; update the README and this test"
    (dst / "config.yaml").write_text(text.replace(placeholder, f'slurm_partition: "{partition}"'))
    return dst


# The cut classifier: all training patients (f100) at 1024 px (the seg112 crops upsampled),
# in batches of 4, make its one epoch longer than its first attempt's minute on two idle CPU cores (at
# 768 px it was 124 s under load 11, near a minute idle: a fast machine could finish it uncut); its
# first attempt gets SLURM's minimum runtime of 1 minute, and the test's profile allows 4 retries
# (a loaded machine needs more attempts: Snakemake's start in each job takes part of every minute).
CUT_CONFIG = "classify:\n  input_size: 1024\n  batch_size: 4\n"
CUT_RUNTIME, CUT_SIGNAL, CUT_RETRIES = "1*attempt", "'--signal=USR1@1'", 4


def cut_classifier(profile: Path) -> None:
    """classify_train asks for 1 minute x attempt, warned 1 s before its limit (SLURM 22.05 sends it up
    to 30 s earlier: its time-limit check runs every 30 s); every other rule keeps the profile's values."""
    text = (profile / "config.yaml").read_text()
    block = re.search(r"\n  classify_train:\n(    .*\n)+", text)
    new = block.group(0).replace('runtime: "240*attempt"', f'runtime: "{CUT_RUNTIME}"').replace(
        "\"'--signal=USR1@120'\"", f'"{CUT_SIGNAL}"')
    assert new.count(CUT_RUNTIME) == new.count(CUT_SIGNAL) == 1, "classify_train's runtime or signal moved"
    text = text.replace(block.group(0), new)
    assert "\nretries: 2 " in text, "the profile's retries moved"
    (profile / "config.yaml").write_text(text.replace("\nretries: 2 ", f"\nretries: {CUT_RETRIES} "))


def slurm_snakemake(wd: Path, cluster, *args: str, env: dict | None = None,
                    configs: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args, "--configfile", "config/test.yaml", *configs]
    env = {"SLURM_CONF": cluster.env["SLURM_CONF"], "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           **(env or {})}
    return run_offline(cmd, cwd=wd, capture_output=True, text=True, env=env, timeout=2400)


def jobs_by_rule(cluster) -> dict[str, list[dict]]:
    """Every job SLURM knows, keyed by the Snakemake rule named in its comment."""
    out = cluster.run("scontrol", "show", "job", "-o")
    jobs: dict[str, list[dict]] = {}
    for line in out.splitlines():
        fields = dict(m.groups() for m in re.finditer(r"(\w[\w/:]*)=(\S*)", line))
        rule = re.match(r"rule_([a-z_]+?)(?:_wildcards_.*)?$", fields.get("Comment", ""))
        if rule:
            jobs.setdefault(rule.group(1), []).append(fields)
    return jobs


def test_profile_runs_a_classifier_on_real_slurm(cluster, tmp_path):
    wd = workflow_copy(tmp_path / "wf")
    fill_in_profile(REPO / "profiles/slurm", wd / "profiles/slurm", partition="ci")
    cut_classifier(wd / "profiles/slurm")
    (wd / "config/cut.yaml").write_text(CUT_CONFIG)
    t0 = time.monotonic()
    proc = slurm_snakemake(wd, cluster, TARGET, "--profile", "profiles/slurm", "--verbose",
                           "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
                           # accounting is off here, so sacct knows no jobs; squeue --states=all does
                           "--slurm-status-command", "squeue", configs=("config/cut.yaml",))
    wall = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    sbatch = [line.split("sbatch call:", 1)[1].strip() for line in text.splitlines() if "sbatch call:" in line]
    short = [re.sub(r" --(output|job-name|comment) \S+| -D \S+| --wrap=.*", "", s) for s in sbatch]
    jobs = jobs_by_rule(cluster)
    cut = sorted(jobs.get("classify_train", []), key=lambda j: int(j["JobId"]))
    record = tmp_path / "slurm_test.json"  # wall time, sbatch calls and the cut job, for whoever debugs (pytest -s)
    record.write_text(json.dumps({"wall_s": round(wall, 1), "sbatch": short,
                                  "comments": [re.search(r"--comment (\S+)", s).group(1) for s in sbatch],
                                  "classify_train": [{k: j.get(k) for k in ("JobId", "JobState", "ExitCode", "RunTime",
                                                                            "TimeLimit", "StartTime", "EndTime")}
                                                     for j in cut]}, indent=1))
    print(f"SLURM run: {wall:.1f} s, {len(sbatch)} sbatch calls; details in {record}")
    assert proc.returncode == 0, f"{text[-6000:]}\n{cluster.logs()}"

    # the outputs, built inside SLURM jobs
    m = json.loads((wd / TARGET).read_text())
    assert 0 <= m["aauc"] <= 1
    assert (wd / "results/seg/selected.json").exists()

    # every rule of the target's DAG went through sbatch, with the profile's partition
    expected = {"synthetic_cohort", "ingest", "split", "seg_train", "seg_select", "crops", "classify_train",
                "classify_eval"}
    assert expected <= set(jobs), jobs.keys()
    assert len(sbatch) == sum(len(v) for v in jobs.values() if v) >= len(expected)
    assert all(" -p ci" in s or "--partition" in s or "-p 'ci'" in s for s in sbatch), sbatch
    for rule, js in jobs.items():
        for j in (js if rule != "classify_train" else cut[-1:]):  # the cut attempts are checked below
            assert j["JobState"] == "COMPLETED", (rule, j)
        for j in js:
            asked_gpu = "gpu" in j.get("TresPerJob", "")
            assert asked_gpu == (rule in TRAINING_RULES), (rule, j.get("TresPerJob"))
    # the same seen from the sbatch lines: --gpus only on training jobs
    gpu_lines = [s for s in sbatch if "--gpus=1" in s]
    assert len(gpu_lines) == len(jobs["seg_train"]) + len(jobs["classify_train"])
    assert all("rule_seg_train" in s or "rule_classify_train" in s for s in gpu_lines)
    # per-rule resources of the profile reached SLURM: seg_train's runtime "120*attempt" (attempt 1),
    # classify_train's mem 16000 MB and its runtime, which grows with each attempt (1, 2, 3 minutes)
    assert jobs["seg_train"][0]["TimeLimit"] == "02:00:00" and "mem=16000M" in jobs["seg_train"][0]["TRES"]
    assert [j["TimeLimit"] for j in cut] == [f"00:0{a}:00" for a in range(1, len(cut) + 1)], cut
    assert all("mem=16000M" in j["TRES"] for j in cut)
    assert jobs["seg_select"][0]["TimeLimit"] == "01:00:00"  # the profile's default-resources runtime "1h"
    # the job logs of SLURM were kept and show the rule ran
    logs = list((wd / ".snakemake/slurm_logs").rglob("*.log"))
    assert any("classify_train" in str(p) for p in logs)
    # cluster jobs run in their own processes: no warm worker, neither here nor inside a job
    assert not (wd / "logs/worker").exists()

    # The classifier's one epoch outlasted its first attempt: SLURM's warning (or its TIMEOUT) cut it, or a
    # later attempt, mid-epoch; the job saved where it stopped and said so in its SLURM log (the rule's log
    # is deleted by the retry); the next attempt (more runtime) resumed there, not from zero; the job
    # finished within the test profile's retries (CUT_RETRIES). A warning that comes before the trainer
    # started (Snakemake still starting in the job) or after it trained (while it predicts) cuts an attempt
    # with nothing to save: the first needs no save, the second resumes from the kept, complete checkpoint.
    assert 2 <= len(cut) <= CUT_RETRIES + 1, cut
    stops = {}
    for j in cut[:-1]:
        assert j["JobState"] in ("FAILED", "TIMEOUT"), j
        job_log = next(p for p in logs if p.name == f"{j['JobId']}.log").read_text()
        stop = re.search(r"anapart: (SIGUSR1|SIGTERM) received: stopped in epoch 1 after batch (\d+) of (\d+) "
                         r"\(([\d.]+)s into it\); saved \S*checkpoint.partial.pt.*raise the rule's runtime", job_log)
        if stop:
            stops[j["JobId"]] = (int(stop.group(2)), int(stop.group(3)))
    assert stops, f"no attempt was cut mid-epoch: {cut}"
    assert all(0 < b < n for b, n in stops.values()) and list(stops.values()) == sorted(set(stops.values()))
    train_log = (wd / "logs/classify/mobilenetv3_large_100_seg112_f100.log").read_text()
    resumed = re.search(r"resuming from checkpoint.partial.pt after epoch (\d)(?:, batch (\d+))?", train_log)
    before = stops.get(cut[-2]["JobId"])
    if before:  # the attempt before the last stopped mid-epoch: the last one went on from its batch
        assert resumed and resumed.groups() == ("0", str(before[0])), train_log
        epoch = re.search(r"epoch 1/1 loss [\d.]+ \(([\d.]+)s, (\d+) samples", train_log)
        slices = re.search(r"(\d+) training slices", train_log)
        assert epoch and slices and epoch.group(2) == slices.group(1), train_log  # each slice once, over the attempts
    else:  # it was cut after training, while predicting: the last one trained nothing more
        assert resumed and resumed.groups() == ("1", None) and "epoch 1/1" not in train_log, train_log
    run_dir = wd / "results/classify/mobilenetv3_large_100/seg112/f100"
    assert (run_dir / "model.pt").stat().st_size > 0 and not (run_dir / "checkpoint.partial.pt").exists()
    print("classify_train attempts:", [(j["JobState"], j["RunTime"], j["TimeLimit"]) for j in cut], "stops:", stops,
          "epoch:", epoch.group(1) + " s" if before else "trained before the last cut")


def test_profile_found_by_bare_name_once_installed(cluster, tmp_path):
    """`snakemake --profile slurm` as users type it: the profile copied to ~/.config/snakemake/slurm."""
    wd = workflow_copy(tmp_path / "wf")
    home = tmp_path / "home"
    fill_in_profile(REPO / "profiles/slurm", home / ".config/snakemake/slurm", partition="ci")
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    proc = slurm_snakemake(wd, cluster, TARGET, "-n", "--profile", "slurm", "--slurm-status-command", "squeue",
                           env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "classify_train" in text and "seg_train" in text
    # without it installed, the bare name is not found: the test is really about the install path
    proc = slurm_snakemake(wd, cluster, TARGET, "-n", "--profile", "slurm",
                           env={"HOME": str(tmp_path / "empty"), "XDG_CONFIG_HOME": str(tmp_path / "empty")})
    assert proc.returncode != 0 and "slurm" in (proc.stdout + proc.stderr)


def test_profile_is_valid_yaml_with_placeholders_marked():
    cfg = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert cfg["executor"] == "slurm"
    for rule in ("seg_train", "classify_train"):
        assert cfg["set-resources"][rule]["gpu"] == 1
        # the walltime grows with Snakemake's attempt: a TIMEOUT retried resumes with more time
        runtime = cfg["set-resources"][rule]["runtime"]
        assert re.fullmatch(r"\d+\*attempt", runtime), runtime
        assert [eval(runtime, {"attempt": a}) for a in (1, 2, 3)] == [int(runtime.split("*")[0]) * a for a in (1, 2, 3)]
        # and SLURM warns the job with SIGUSR1 before its limit: training saves mid-epoch
        assert "--signal=USR1@" in cfg["set-resources"][rule]["slurm_extra"]
    text = (REPO / "profiles/slurm/config.yaml").read_text()
    assert text.count("FILL IN") >= 2 and "slurm_account" in text
    assert "--gres" not in re.sub(r"#.*", "", text)
    # the local default profile (if any) never switches the executor
    default = REPO / "profiles/default/config.yaml"
    if default.exists():
        assert "executor" not in (yaml.safe_load(default.read_text()) or {})


@pytest.mark.parametrize("ci, outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_no_slurm_fails_under_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    """A green CI must have run the SLURM tests: the busy/missing-SLURM path is a failure there
    (the fixture needs a real cluster to reach it, so it is checked here on its own)."""
    monkeypatch.setenv("CI", ci)
    try:  # caught by hand: a skip escaping pytest.raises would skip this test instead of failing it
        unavailable("SLURM is busy: another slurmctld holds the port")
    except BaseException as e:  # noqa: BLE001 - pytest's outcomes are BaseExceptions
        raised = e
    else:
        raised = None
    assert type(raised) is outcome and "SLURM is busy" in str(raised), repr(raised)
