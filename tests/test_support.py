"""The support registry and matrix: every image DiT class of diffusers is an adapter or listed with its reason;
``dit-lens support`` checks rows; docs/support.md is what the command wrote."""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest

from dit_lens.archs import ARCHS, IMAGE_DITS, UNSUPPORTED, arch_for
from dit_lens.cli import main
from dit_lens.errors import UnsupportedModelError
from dit_lens.support import CHECKS, markdown, matrix
from dit_lens.testing import ROWS

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_image_dit_class_is_an_adapter_or_listed_with_a_reason():
    assert not set(ARCHS) & set(UNSUPPORTED)
    assert set(ARCHS) | set(UNSUPPORTED) == set(IMAGE_DITS) | set(ARCHS)
    missing = [c for c in IMAGE_DITS if not hasattr(diffusers, c)]
    assert not missing, f"not in diffusers {diffusers.__version__}: {missing}"
    assert all(len(reason) > 20 for reason in UNSUPPORTED.values())


def test_an_unsupported_class_says_why():
    model = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=1,
                                            sample_size=8, norm_num_groups=1)
    with pytest.raises(UnsupportedModelError, match="class-conditional.*dit-lens support"):
        arch_for(model)


def test_the_matrix_checks_rows_of_both_cfg_styles():
    m = matrix(rows=["flux_true_cfg", "sd3"], progress=False)
    rows = {k: r for c in m["classes"].values() for k, r in c["rows"].items()}
    assert set(rows) == {"flux_true_cfg", "sd3"}
    for key, checks in rows.items():
        assert list(checks) == list(CHECKS) and all(v is True for v in checks.values()), (key, checks)
    assert m["classes"]["DiTTransformer2DModel"]["status"] == "no adapter"
    with pytest.raises(ValueError, match="no contract rows"):
        matrix(rows=["nope"], progress=False)


def test_docs_support_is_the_commands_output_and_matches_the_registry():
    m = json.loads((DOCS / "support.json").read_text())
    assert (DOCS / "support.md").read_text() == markdown(m)
    assert {c for c, v in m["classes"].items() if v["status"] == "supported"} == set(ARCHS)
    assert {k for v in m["classes"].values() for k in v["rows"]} == set(ROWS)
    assert all(r is True for v in m["classes"].values() for checks in v["rows"].values() for r in checks.values())


def test_cli_support_without_checks(capsys):
    assert main(["support", "--no-check"]) == 0
    out = capsys.readouterr().out
    assert "of 34 image DiT classes have an adapter" in out and "ZImageTransformer2DModel" in out
