"""Recipes: plain functions over the public API, run from files that map 1:1 onto their keyword arguments.

    RECIPES                 name -> function (detect, disrupt, cluster, transport)
    run_file(path, out)     run ``recipes/X.toml`` and write ``out/report.json`` plus the recipe's figures

A recipe file names the function and gives its keyword arguments; two keys are special: ``model`` (a Lens spec:
"tiny", a folder or a hub id) becomes the function's first argument, or ``store`` (a path or URL) does::

    recipe = "detect"
    store = "stores/demo.zarr"
    names = "*.*.img.resid_post"
    k = 4

Pipeline call arguments go in a ``pipeline`` table (``pipeline = {guidance_scale = 4.0}``).

Writing a new recipe = one function returning an object with ``to_dict()`` (and optionally ``figures(out)`` or
``figure(out)``) + one line in RECIPES + one file in recipes/.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from .cluster import cluster
from .detect import detect
from .disrupt import disrupt
from .transport import transport

RECIPES = {"detect": detect, "disrupt": disrupt, "cluster": cluster, "transport": transport}


def load(path) -> tuple[str, dict]:
    with open(path, "rb") as f:
        spec = tomllib.load(f)
    name = spec.pop("recipe", None)
    if name not in RECIPES:
        raise ValueError(f"{path}: 'recipe' must be one of {sorted(RECIPES)}, got {name!r}")
    return name, spec


def run_file(path, out) -> dict:
    import inspect

    from .. import __version__
    from ..lens import Lens
    from ..record import config_hash

    name, spec = load(path)
    fn = RECIPES[name]
    params = inspect.signature(fn).parameters
    unknown = [k for k in spec if k not in ("model", "store") and k not in params]
    if unknown:
        raise ValueError(f"{path}: {name} has no arguments {unknown}; it takes {list(params)[1:]}")
    kwargs = dict(spec)
    source_desc = {}
    if "model" in kwargs:
        lens = Lens(kwargs.pop("model"))
        source = lens
        source_desc = dict(model=spec["model"], model_class=type(lens.pipeline.transformer).__name__,
                           config_hash=config_hash(lens.pipeline))
    elif "store" in kwargs:
        source = kwargs.pop("store")
        source_desc = dict(store=source)
    else:
        raise ValueError(f"{path}: give 'model' (a Lens spec) or 'store' (a store path or URL)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    result = fn(source, **kwargs)
    seconds = time.time() - t0
    figures = []
    if hasattr(result, "figures"):
        figures = [str(p) for p in result.figures(out)]
    elif hasattr(result, "figure"):
        figures = [str(result.figure(out))]
    report = dict(recipe=name, file=str(path), parameters=spec, source=source_desc, dit_lens_version=__version__,
                  seconds=round(seconds, 2), figures=figures, result=result.to_dict())
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return report
