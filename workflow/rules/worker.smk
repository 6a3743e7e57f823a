# The warm worker (anapart.runtime): local jobs fork from one process that imported the libraries
# once. Started by the Snakefile's onstart, stopped by onsuccess/onerror.
import sys
from anapart.runtime import worker as _worker  # standard library only

_WORKER = []


def start_worker():
    """onstart: one process imports torch, timm, pandas ... once and forks each local job from it
    (anapart.runtime.worker); not for cluster jobs, dry runs, --touch, or runs whose jobs use conda,
    containers or modules (another interpreter). Jobs never use a worker this run did not start
    (one inherited from an enclosing run, say)."""
    os.environ.pop(_worker.ENV_VAR, None)
    if (
        on("warm_worker")
        and workflow.is_main_process
        and workflow.local_exec
        and not workflow.touch
        and not workflow.deployment_settings.deployment_method
    ):
        handle = _worker.start("logs/worker")
        if handle is not None:
            _WORKER.append(handle)


def stop_worker():
    while _WORKER:
        handle = _WORKER.pop()
        code = handle.ended_early()
        if code is not None:
            print(
                f"anapart: warning: the warm worker ended during the run (exit status {code}; "
                "logs/worker/server.log); the jobs after that ran in their own processes, slower "
                "to start, with the same results",
                file=sys.stderr,
            )
        handle.stop()


# One GPU per local job (anapart.runtime.devices): training rules ask for `gpu=GPU_JOB`, so
# `snakemake -cN --resources gpu=K` runs at most K of them at once, and each claims its own device
# from a pool of K slots (CUDA_VISIBLE_DEVICES); on a cluster the same resource becomes --gpus=1.
from anapart.runtime import devices as _devices  # standard library only

GPU_JOB = 0 if config["device"] == "cpu" else 1


def start_gpu_pool():
    """onstart: name a pool of --resources gpu=K device slots in the jobs' environment (local runs
    only; without gpu=K every job sees every GPU, as before)."""
    os.environ.pop(_devices.ENV_VAR, None)
    n = workflow.global_resources.get("gpu")
    n = getattr(n, "value", n)
    if (
        workflow.is_main_process
        and workflow.local_exec
        and isinstance(n, int)
        and n > 0
    ):
        os.environ[_devices.ENV_VAR] = _devices.describe(
            ".snakemake/anapart-gpu-pool", n, os.environ.get("CUDA_VISIBLE_DEVICES")
        )
