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
