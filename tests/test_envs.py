"""The rules' conda environment asks for the same packages and pins as pyproject.toml."""

import tomllib

import yaml

from conftest import REPO


def _norm(spec: str) -> str:
    return spec.replace(" ", "").lower()


def test_conda_env_matches_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs" / "anapart.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    runtime = {_norm(d) for d in deps if not d.lower().startswith("snakemake")}
    # conda packages (pinned with "=") count as well: pyradiomics comes from conda-forge
    conda = {_norm(d).replace("=", "==") for d in env["dependencies"]
             if isinstance(d, str) and not d.startswith(("python", "pip"))}
    assert runtime == {_norm(d) for d in pip} | conda
    assert "pyradiomics==3.0.1" in conda
    assert "torch==2.14.1" in runtime and "torchvision==0.29.1" in runtime


def test_every_rule_has_log_and_conda():
    import re

    total = 0
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        n_rules = len(re.findall(r"^\s*rule \w+:", text, flags=re.M))
        total += n_rules
        assert len(re.findall(r"^\s+log:", text, flags=re.M)) == n_rules, f"{smk.name}: a rule without log:"
        assert len(re.findall(r"^\s+conda:", text, flags=re.M)) == n_rules, f"{smk.name}: a rule without conda:"
    assert total >= 14
