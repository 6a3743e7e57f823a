"""Snakemake's own linter and snakefmt: the workflow stays clean as it grows."""

import sys

import pytest
import yaml

from support.common import REPO, run_offline

pytestmark = pytest.mark.workflow


def test_snakemake_lint_is_clean():
    proc = run_offline([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition!" in out, out


def test_snakefmt_check():
    proc = run_offline([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_of_default_config():
    proc = run_offline([sys.executable, "-m", "snakemake", "-n", "-q"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("overlay, message", [
    ({"classify": {"nets": ["efficientnet_b9", "mobilenetv3_large_100"]},
      "cam": {"target_layers": {"efficientnet_b9": "blocks.4", "mobilenetv3_large_100": "blocks.4"}}},
     "classify.nets: 'efficientnet_b9' is not a timm network; did you mean efficientnet_b"),
    ({"classify": {"nets": ["mobilenetv3_large_100", "resnet18"]}},
     "cam.target_layers: no entry for 'resnet18' (in classify.nets)"),
    ({"staging": {"models": ["vgg16", "densenet_121"]}},
     "staging.models: 'densenet_121' is not a timm network; did you mean densenet121"),
])
def test_a_dry_run_names_a_bad_network_at_once(tmp_path, overlay, message):
    """Before this check a bogus name surfaced hours later inside a training job, and a network
    without a Grad-CAM layer as a KeyError from rule cam."""
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(overlay))
    proc = run_offline([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/config.yaml",
                        str(tmp_path / "bad.yaml")], cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]
