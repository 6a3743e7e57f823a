"""Benchmark: the whole demo DAG from nothing, with per-rule wall, CPU and memory.

Copies the working tree (tracked and untracked-but-not-ignored files: no data/, results/, logs/)
into a fresh folder, runs ``snakemake -c<cores>`` there, and reads the per-rule ``benchmark:``
files (``logs/bench/<rule>/<wildcards>.tsv``) that every rule writes. Prints and saves:

- total wall time, peak RSS of the largest process, CPU utilisation (job-seconds / wall x cores:
  what share of the cores the DAG kept busy);
- per rule: jobs, summed and longest wall, summed CPU time, largest RSS;
- the demo's headline numbers (mean aAUC per format and fraction, segmentation Dice, study B's
  accuracies), so a faster demo can be checked to say no less.

    .venv/bin/python benchmarks/demo_bench.py                  # demo config, 2 cores
    .venv/bin/python benchmarks/demo_bench.py --record         # and add a line to RESULTS.md
    .venv/bin/python benchmarks/demo_bench.py --configfile config/test.yaml

A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_tree(dst: Path) -> None:
    """The repository as a fresh clone plus uncommitted edits would have it (nothing ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), out)
        elif src.is_file():
            shutil.copy2(src, out)


def read_benchmarks(workdir: Path) -> list[dict]:
    rows = []
    for tsv in sorted((workdir / "logs" / "bench").rglob("*.tsv")):
        rule = tsv.relative_to(workdir / "logs" / "bench").parts[0]
        with open(tsv) as fh:
            for rec in csv.DictReader(fh, delimiter="\t"):
                num = {k: float(v) if v not in ("", "NA", "-") else 0.0 for k, v in rec.items() if k != "h:m:s"}
                rows.append({"rule": rule, "job": str(tsv.relative_to(workdir / "logs" / "bench")), **num})
    return rows


def read_worker_jobs(workdir: Path) -> list[dict]:
    """Jobs the warm worker ran (``logs/worker/jobs.tsv``): Snakemake's ``benchmark:`` measured only
    the script process that waited for them, so their CPU time and memory come from here."""
    path = workdir / "logs" / "worker" / "jobs.tsv"
    if not path.exists():
        return []
    with open(path) as fh:
        return [{"rule": r["job"], "cpu_s": float(r["cpu_s"]), "max_rss_mb": float(r["max_rss_mb"])}
                for r in csv.DictReader(fh, delimiter="\t")]


def per_rule(rows: list[dict], worker: list[dict] = ()) -> list[dict]:
    out = {}
    for r in rows:
        a = out.setdefault(r["rule"], {"rule": r["rule"], "jobs": 0, "in_worker": 0, "wall_sum_s": 0.0,
                                       "wall_max_s": 0.0, "cpu_sum_s": 0.0, "rss_max_mb": 0.0})
        a["jobs"] += 1
        a["wall_sum_s"] += r["s"]
        a["wall_max_s"] = max(a["wall_max_s"], r["s"])
        a["cpu_sum_s"] += r.get("cpu_time", 0.0)
        a["rss_max_mb"] = max(a["rss_max_mb"], r.get("max_rss", 0.0))
    for w in worker:
        a = out.get(w["rule"])
        if a is not None:
            a["in_worker"] += 1
            a["cpu_sum_s"] += w["cpu_s"]
            a["rss_max_mb"] = max(a["rss_max_mb"], w["max_rss_mb"])
    return sorted(out.values(), key=lambda a: -a["wall_sum_s"])


def headline(workdir: Path) -> dict:
    """The numbers a shorter demo must not lose."""
    import pandas as pd

    out: dict = {}
    auc = workdir / "results/tables/auc.csv"
    if auc.exists():
        t = pd.read_csv(auc)
        g = t.groupby(["fmt", "frac"])["aauc"].mean().round(3)
        out["mean_aauc"] = {f"{fmt}/f{frac}": float(v) for (fmt, frac), v in g.items()}
    sel = workdir / "results/seg/selected.json"
    if sel.exists():
        s = json.loads(sel.read_text())
        out["segmentation"] = {a: {k: round(c[k]["dice_mean"], 3) for k in ("validation", "test")
                                   if isinstance(c.get(k), dict) and c[k].get("dice_mean") is not None}
                               for a, c in s.get("candidates", {}).items()}
        out["segmentation_selected"] = s.get("selected")
    t4 = workdir / "results/staging/tables/table4_models.csv"
    if t4.exists():
        t = pd.read_csv(t4).drop_duplicates("method")
        out["staging_accuracy"] = dict(zip(t["method"], t["accuracy"].round(3)))
    return out


def rules_table(rules: list[dict]) -> str:
    """Markdown; CPU and RSS of worker jobs are the forked child's (RSS includes the libraries it
    shares with the worker, copy-on-write)."""
    lines = ["| rule | jobs | in worker | wall sum (s) | longest (s) | CPU sum (s) | max RSS (MB) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['rule']} | {r['jobs']} | {r['in_worker']} | {r['wall_sum_s']:.1f} | {r['wall_max_s']:.1f} | "
              f"{r['cpu_sum_s']:.1f} | {r['rss_max_mb']:.0f} |" for r in rules]
    return "\n".join(lines)


def import_seconds(python: str) -> dict:
    """What a job pays before it does anything: interpreter start plus imports, best of 3."""
    out = {}
    for label, stmt in (("python", "pass"), ("pandas+sklearn", "import pandas, sklearn.metrics"),
                        ("torch+timm", "import torch, timm")):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([python, "-c", stmt], check=True)
            best = min(best, time.perf_counter() - t0)
        out[label] = round(best, 2)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--configfile", nargs="*", default=[], help="extra config files (merged over the demo)")
    ap.add_argument("--workdir", type=Path, help="run here (default: a fresh temporary folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/out/demo")
    ap.add_argument("--record", action="store_true", help="append a line to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)

    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = Path(tempfile.mkdtemp(prefix="anapart-demo-"))
        workdir = tmp / "repo"
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"{workdir}: not empty; the benchmark runs the demo from nothing")
    workdir.mkdir(parents=True, exist_ok=True)
    copy_tree(workdir)
    cmd = [sys.executable, "-m", "snakemake", f"-c{args.cores}"]
    if args.configfile:
        cmd += ["--configfile", *[str(Path(c).resolve()) for c in args.configfile]]
    print("running:", " ".join(cmd), "in", workdir, flush=True)
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    # the copy's own package, not the checkout's editable install: edits to the checkout during a
    # (long) run must not change the code the remaining jobs run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir / "src"), os.environ.get("PYTHONPATH")]))}
    with open(args.out / "snakemake.log", "w") as log:
        proc = subprocess.run(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if proc.returncode != 0:
        print(f"snakemake failed (exit {proc.returncode}); logs under {workdir}/logs", file=sys.stderr)
        return proc.returncode
    rows = read_benchmarks(workdir)
    worker = read_worker_jobs(workdir)
    rules = per_rule(rows, worker)
    job_s = sum(r["s"] for r in rows)
    summary = {
        "date": dt.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip(),
        "dirty": bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                                     text=True).stdout.strip()),
        "cores": args.cores,
        "configfiles": args.configfile,
        "jobs": len(rows),
        "jobs_in_worker": len(worker),
        "wall_s": round(wall, 1),
        "job_seconds": round(job_s, 1),
        "core_utilisation": round(job_s / (wall * args.cores), 3),
        "peak_rss_mb": round(peak_mb, 1),
        "startup_s": import_seconds(sys.executable),
        "headline": headline(workdir),
        "rules": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rules],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(args.out / "jobs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    print(f"\n{len(rows)} jobs ({len(worker)} forked by the warm worker) in {wall:.1f} s wall on {args.cores} "
          f"cores; job-seconds {job_s:.0f} (utilisation {summary['core_utilisation']:.0%}); peak RSS {peak_mb:.0f} MB")
    print("\n" + rules_table(rules))
    print("\nstart-up per job (s):", summary["startup_s"])
    print("headline:", json.dumps(summary["headline"], indent=1))
    if args.record:
        with open(REPO / "benchmarks/RESULTS.md", "a") as fh:
            fh.write(f"\n### demo_bench {summary['date']}, commit {summary['commit']}"
                     f"{' (uncommitted changes)' if summary['dirty'] else ''}, "
                     f"{' '.join(args.configfile) or 'demo config'}\n\n"
                     f"{len(rows)} jobs ({len(worker)} forked by the warm worker), **{wall:.0f} s wall** on "
                     f"{args.cores} cores, job-seconds {job_s:.0f} (utilisation {summary['core_utilisation']:.0%}), "
                     f"peak RSS {peak_mb:.0f} MB; start-up per job in a fresh process {summary['startup_s']}."
                     f"\n\n{rules_table(rules)}\n\nHeadline: "
                     f"`{json.dumps(summary['headline'])}`\n")
    if tmp is not None and not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
