"""Atomic output and per-rule logging, shared by every stage.

A killed job must never leave a file that Snakemake (or a user) mistakes for a finished one, so
every writer goes through :func:`atomic_path`: write to a hidden temporary name in the same
folder, then ``os.replace`` it into place. A job killed with SIGKILL (OOM, wall-time limit) cannot
remove that temporary; :func:`start_job`, every glue script's first step, removes what an earlier
attempt at the same outputs left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Iterator

TMP_HEX = 8  # hex digits of a temporary's random part: .<name>.<hex>.tmp


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporaries :func:`atomic_path` made for ``path`` (``.<name>.<8 hex>.tmp`` beside it)."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{{TMP_HEX}}}\.tmp")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def sweep_temporaries(paths) -> list[Path]:
    """Remove the temporaries left beside ``paths`` by a killed writer; returns what was removed.

    Only a job's own outputs are swept (never a whole folder): other jobs may be writing beside them.
    """
    removed = []
    for path in paths:
        for tmp in stale_temporaries(path):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def start_job(smk, *extra: str | os.PathLike) -> logging.Logger:
    """A glue script's first step: log to the rule's ``log:`` file and sweep what a killed earlier
    attempt at this job left beside its outputs (and beside ``extra`` paths, e.g. its checkpoint)."""
    log = setup_logging(smk.log[0] if len(smk.log) else None)
    for tmp in sweep_temporaries([*smk.output, *(e for e in extra if e)]):
        log.warning("removed %s, left by a killed earlier run of this job", tmp)
    return log


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` only if the block succeeds.

    Works for files and folders. On any exception the temporary is removed and ``path`` is left
    as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:TMP_HEX]}.tmp")
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for several outputs that must appear together or not at all."""
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(p)) for p in paths]
        yield tmps


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: str | os.PathLike, frame, **kwargs) -> None:
    """Write a pandas frame atomically with stable formatting (no index, '\\n' line ends)."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (rules run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save a matplotlib figure as PNG atomically and free it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def setup_logging(log_path: str | os.PathLike | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the ``anapart`` logger (and stderr, for tracebacks) to a rule's ``log:`` file."""
    logger = logging.getLogger("anapart")
    logger.setLevel(level)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives for the process
        console = sys.__stderr__
        sys.stderr = stream

        def excepthook(kind, value, tb):
            # Full traceback to the rule's log, the one-line reason to the console as well.
            import traceback

            traceback.print_exception(kind, value, tb, file=stream)
            if console is not None:
                print(f"anapart error (see {log_path}): {value}", file=console)

        sys.excepthook = excepthook
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return logger
