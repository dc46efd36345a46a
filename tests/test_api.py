"""The public surface, the error hierarchy, the model-spec registry and the import graph (one-way data flow)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import dit_lens
from dit_lens import errors, models, testing

PACKAGE = Path(dit_lens.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], "dit_lens."))
OUTSIDE_TINY = [m for m in MODULES if not m.startswith("dit_lens.tiny")]


def test_public_names_resolve_and_record_stays_the_function():
    for name in dit_lens.__all__:
        assert getattr(dit_lens, name) is not None, name
    for name in ("open_store", "record", "channel_reduce", "DitLensError", "detect", "disrupt", "cluster",
                 "transport", "Cache", "tiny_pipeline"):
        assert name in dit_lens.__all__
    record_module = importlib.import_module("dit_lens.record")  # the module imports; the attribute stays the function
    assert record_module.record is dit_lens.record
    assert callable(dit_lens.record) and dit_lens.record.__name__ == "record"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_declares_what_it_exports(module):
    mod = importlib.import_module(module)
    assert hasattr(mod, "__all__"), f"{module} declares no __all__"
    missing = [n for n in mod.__all__ if not hasattr(mod, n) and n not in getattr(mod, "_LAZY", {})]
    assert not missing, f"{module}.__all__ names what it lacks: {missing}"


def _imports_tiny(path: Path, module: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("dit_lens.tiny")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parts = module.split(".")[:-node.level] if not path.name == "__init__.py" else \
                    module.split(".")[:len(module.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" for a in node.names]
            found += [n for n in [base, *names] if n == "dit_lens.tiny" or n.startswith("dit_lens.tiny.")]
    return found


def test_nothing_outside_the_embedded_model_imports_it():
    """Only the spec registry names it (by an import path string); no core, store or recipe module imports it,
    at the top or inside a function."""
    offenders = {}
    for module in OUTSIDE_TINY:
        spec = importlib.util.find_spec(module)
        hits = _imports_tiny(Path(spec.origin), module)
        if hits:
            offenders[module] = hits
    assert not offenders, offenders
    code = ("import importlib, sys\n"
            f"for m in {OUTSIDE_TINY!r}:\n    importlib.import_module(m)\n"
            "assert not [m for m in sys.modules if m.startswith('dit_lens.tiny')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_import_checker_sees_relative_and_nested_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from ..tiny.evaluate import analyse\n")
    assert _imports_tiny(f, "dit_lens.recipes.m") == ["dit_lens.tiny.evaluate", "dit_lens.tiny.evaluate.analyse"]
    f.write_text("from . import tiny\n")
    assert _imports_tiny(f, "dit_lens.x") == ["dit_lens.tiny"]


@pytest.mark.parametrize("name, builtin", [
    ("UnknownNameError", KeyError), ("CacheKeyError", KeyError), ("UnsupportedModelError", TypeError),
    ("AdapterMismatch", RuntimeError), ("ArgumentError", ValueError), ("OutOfRangeError", IndexError),
    ("RunError", RuntimeError), ("StoreError", RuntimeError), ("RecipeError", ValueError)])
def test_every_error_is_a_dit_lens_error_and_its_builtin(name, builtin):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.DitLensError) and issubclass(cls, builtin)
    assert getattr(dit_lens, name) is cls
    assert str(cls("plain message")) == "plain message"  # KeyError's quoting is undone


def test_errors_raised_are_the_specific_classes(tmp_path):
    lens, kw = testing.lens("flux")
    with pytest.raises(errors.UnknownNameError, match="closest match"):
        lens.names("double.9.img.resid_post")
    # the error lists each family's sites: Flux's single-stream blocks have attn_out, no mlp_out
    with pytest.raises(errors.UnknownNameError, match=r"single\.0-1 \(img, txt; resid_pre, attn_out, resid_post\)"):
        lens.names("single.0.img.mlp_out")
    with pytest.raises(errors.OutOfRangeError, match="channels index"):
        lens.generate(num_inference_steps=2, edits=[dit_lens.zero("double.0.img.resid_post", channels=[999])], **kw)
    with pytest.raises(errors.ArgumentError, match="num_inference_steps is required"):
        lens.generate(**kw)
    with pytest.raises(errors.StoreError, match="no dit-lens store"):
        dit_lens.open_store(str(tmp_path / "absent.zarr"))
    with pytest.raises(errors.RecipeError, match="k="):
        dit_lens.disrupt(lens, prompts=["a"], k=999, num_inference_steps=2, pipeline=kw)
    with pytest.raises(errors.ArgumentError, match="cfg="):
        dit_lens.record(lens, str(tmp_path / "s.zarr"), ["a"], cfg="bogus", num_inference_steps=2, **kw)
    with pytest.raises(errors.ArgumentError, match="at least one prompt and one seed"):
        dit_lens.record(lens, str(tmp_path / "s.zarr"), [], num_inference_steps=2, **kw)
    assert not (tmp_path / "s.zarr").exists()


SPEC = models.ModelSpec(name="test-flux", pipeline_class="FluxPipeline", build=lambda: testing.ROWS[
    "flux"].build()[0], example=dict(testing.ROWS["flux"].build()[1], num_inference_steps=1))


def test_model_specs_resolve_by_name_and_by_pipeline_class():
    lens = dit_lens.Lens("tiny")
    assert lens.spec is models.get("tiny") and lens.spec.pipeline_class == "TinyShapesPipeline"
    assert models.for_pipeline(lens.pipeline) is lens.spec and models.for_pipeline("FluxPipeline") is None
    assert dit_lens.Lens(dit_lens.tiny_pipeline(None)).spec is lens.spec  # an in-memory pipeline of the class
    with pytest.raises(errors.ArgumentError, match="no model spec named 'nothing'.*'tiny'"):
        models.get("nothing")
    models.register("test-flux", f"{__name__}:SPEC", "FluxPipeline")
    try:
        assert "test-flux" in models.names()
        flux = dit_lens.Lens("test-flux")
        assert flux.spec is SPEC and flux.names("double.*.img.resid_post") == ["double.0.img.resid_post",
                                                                              "double.1.img.resid_post"]
    finally:
        models._REGISTRY.pop("test-flux")
        models._LOADED.pop("test-flux", None)


def test_lens_exposes_what_the_recorder_needs():
    lens, kw = testing.lens("qwenimage")
    assert lens.img_tokens == 16 and lens.token_grid(64, 64) == (4, 4)
    assert lens.calls_per_step(**kw) == 2 and lens.calls_per_step(**dict(kw, true_cfg_scale=1.0)) == 1
    assert lens.config_hash == models.config_hash(lens.pipeline) and len(lens.config_hash) == 16
    assert lens.check_steps(3) == 3
