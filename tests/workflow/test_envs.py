"""The lock, pyproject.toml and the rules' conda environment agree, and the installed env is the lock."""

import re
import tomllib
from importlib import metadata

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.common import REPO


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def env_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / "anapart.yaml").read_text())
    pins = {}
    for d in env["dependencies"]:
        if isinstance(d, dict):
            for spec in d["pip"]:
                name, version = spec.split("==")
                pins[canonicalize_name(name)] = version
        elif not d.startswith(("python=", "pip")) and d != "pip":
            name, version = d.split("=")
            pins[canonicalize_name(name)] = version
    return pins


def test_lock_satisfies_every_requirement_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = lock_pins()
    for r in reqs:
        name = canonicalize_name(r.name)
        assert name in pins, f"{r.name} (pyproject) is not in requirements.lock"
        assert r.specifier.contains(pins[name], prereleases=True), f"lock has {r.name}=={pins[name]}, pyproject {r}"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_conda_env_has_the_locks_exact_versions():
    lock, env = lock_pins(), env_pins()
    tooling = {"pip", "setuptools", "wheel"}
    assert {k: v for k, v in lock.items() if k not in tooling} == env
    conda = yaml.safe_load((REPO / "envs" / "anapart.yaml").read_text())["dependencies"]
    assert "pyradiomics=3.0.1" in conda  # conda-forge's build: on PyPI it is an sdist


def test_installed_environment_is_the_lock():
    """What the README command installed is what the lock says (a forgotten -c shows up here)."""
    lock = lock_pins()
    off = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in lock and dist.version != lock[name]:
            off[name] = (dist.version, lock[name])
    assert not off, f"installed vs locked: {off}"


def test_readme_and_ci_install_through_the_lock():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    installs = re.findall(r"^python3 -m venv .*$", readme, flags=re.M)
    assert len(installs) == 2, "README: one install+demo command, one test command"
    for cmd in installs:
        assert cmd.count("-c requirements.lock") == 2, cmd
    test_cmd = next(c for c in installs if c.endswith("-m pytest"))
    assert test_cmd in ci, ".ci/run must run the README's test command exactly"
    assert "PIP_NO_CACHE_DIR=1" in ci


def test_every_rule_has_log_conda_and_benchmark():
    total = 0
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        # a `use rule ... with:` rule is a rule of its own: it states its own log, benchmark and env
        n_rules = len(re.findall(r"^\s*(?:rule \w+|use rule \w+ as \w+ with):", text, flags=re.M))
        total += n_rules
        for directive in ("log", "conda", "benchmark"):
            n = len(re.findall(rf"^\s+{directive}:", text, flags=re.M))
            assert n == n_rules, f"{smk.name}: a rule without {directive}:"
    assert total >= 14
