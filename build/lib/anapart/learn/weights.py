"""Pretrained (ImageNet) weights of timm networks: timm's hub, one local file, or a folder.

A folder holds one file per network, ``<timm model name>.safetensors`` (or ``.pth``), so that jobs
on cluster nodes without internet never download anything: the workflow's ``weights`` rule (a
local rule, run where Snakemake runs) fills the folder from timm's hub once. This module imports
no torch at import time: the Snakefile reads it to wire the weights files into the DAG.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import json
import logging
from pathlib import Path

from anapart.io.files import atomic_path

log = logging.getLogger("anapart.weights")

# A `pretrained` value ending like this names one weights file (used for every network).
FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".pth.tar", ".ckpt")
# What a weights folder is searched for, in this order; `download` writes the first.
FOLDER_FORMATS = (".safetensors", ".pth")


def parse(value) -> bool | Path:
    """``false``/None -> random init; ``true`` -> timm's hub weights; anything else -> a file or folder."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("false", "none", "")):
        return False
    if value is True or (isinstance(value, str) and value.lower() == "true"):
        return True
    return Path(value)


def folder_of(value) -> Path | None:
    """The weights folder ``value`` names, else None (false, true, or one weights file).

    A folder is an existing folder or a path without a file suffix (``resources/weights``, created
    by rule weights); a path with another suffix (``.h5``, ``.npz``) is neither, and an error.
    """
    p = parse(value)
    if not isinstance(p, Path):
        return None
    if p.is_dir():
        return p
    if p.name.lower().endswith(FILE_SUFFIXES):
        return None
    if p.suffix:
        raise ValueError(f"{p}: pretrained weights must be a weights file ({', '.join(FILE_SUFFIXES)}) or a folder "
                         f"of <timm model name>{' or '.join(FOLDER_FORMATS)} files; '{p.suffix}' is neither")
    return p


def file_in_folder(folder, net: str) -> Path:
    """``net``'s file in a weights folder: the first existing format, else where :func:`download` writes it."""
    folder = Path(folder)
    for suffix in FOLDER_FORMATS:
        if (folder / f"{net}{suffix}").is_file():
            return folder / f"{net}{suffix}"
    return folder / f"{net}{FOLDER_FORMATS[0]}"


def resolve(value, net: str) -> bool | Path:
    """False, True (hub) or the existing local file with ``net``'s weights; a missing file is an error
    that names the file(s) looked for."""
    p = parse(value)
    if not isinstance(p, Path):
        return p
    folder = folder_of(p)
    if folder is None:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: pretrained weights file for {net} does not exist")
        return p
    f = file_in_folder(folder, net)
    if not f.is_file():
        looked = " or ".join(str(folder / f"{net}{s}") for s in FOLDER_FORMATS)
        raise FileNotFoundError(f"{looked}: no pretrained weights for {net} in the weights folder {folder}; fill it "
                                f"where there is internet (snakemake {folder / (net + FOLDER_FORMATS[0])}) or copy "
                                "the file there")
    return f


def network_problems(names_by_key: dict[str, list[str]], cache: str | Path | None = None) -> list[str]:
    """One message per configured network name that is not one of timm's (``{config key: names}``),
    with the closest names timm has: checked when Snakemake starts, not hours later in a training job.

    Names found before are remembered in ``cache`` per timm version, so a run whose names were all
    checked does not import timm (and torch) just to check them again.
    """
    try:
        version = importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:  # Snakemake runs where timm is not: the jobs will say
        return []
    cache = Path(cache) if cache else None
    known: set[str] = set()
    if cache is not None and cache.is_file():
        try:
            data = json.loads(cache.read_text())
            known = set(data.get("names", [])) if data.get("timm") == version else set()
        except (ValueError, OSError):
            known = set()
    wanted = {n for names in names_by_key.values() for n in names}
    if wanted <= known:
        return []
    import timm  # heavy (imports torch): only when a name was not checked before

    models = set(timm.list_models())
    problems = []
    for key, names in names_by_key.items():
        for n in names:
            if not timm.is_model(n):  # a pretrained tag (resnet50.a1_in1k) names its model too
                close = difflib.get_close_matches(n, sorted(models), n=3, cutoff=0.8)
                hint = f"; did you mean {' or '.join(close)}?" if close else " (timm.list_models() lists them)"
                problems.append(f"{key}: '{n}' is not a timm network{hint}")
    good = known | {n for n in wanted if timm.is_model(n)}
    if cache is not None and not problems:
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps({"timm": version, "names": sorted(good)}))
    return problems


def create_model(net: str, pretrained=False, **kwargs):
    """``timm.create_model`` with weights from :func:`resolve`. A local file goes through timm's own
    loader, which drops a classifier head of another size and sums a 3-channel first convolution
    to ``in_chans``, so a ``timm.create_model(net).state_dict()`` file (ImageNet layout) works as is."""
    import timm

    pre = resolve(pretrained, net)
    if isinstance(pre, Path):
        log.info("%s: pretrained weights from %s", net, pre)
        return timm.create_model(net, pretrained=True, pretrained_cfg_overlay=dict(file=str(pre)), **kwargs)
    return timm.create_model(net, pretrained=bool(pre), **kwargs)


def download(net: str, out) -> Path:
    """Fetch ``net``'s default pretrained weights from timm's hub and save them as safetensors; if
    that fails (no internet), the error says which file to put where instead."""
    import timm
    from safetensors.torch import save_file


    out = Path(out)
    try:
        model = timm.create_model(net, pretrained=True)
    except Exception as e:
        formats = " or ".join(f"{net}{s}" for s in FOLDER_FORMATS)
        raise RuntimeError(f"{out}: could not download the pretrained weights of {net} from timm's hub "
                           f"({type(e).__name__}: {e}). Run this rule where there is internet, or copy {formats} "
                           f"(the state_dict of timm.create_model('{net}', pretrained=True)) into {out.parent}/") from e
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata={"timm_model": net, "pretrained_tag": str(model.pretrained_cfg.get("tag"))})
    log.info("%s: %d tensors saved to %s", net, len(state), out)
    return Path(out)
