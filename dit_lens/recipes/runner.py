"""Recipe files: ``recipes/X.toml`` names a recipe function and gives its keyword arguments.

    RECIPES                 name -> function (detect, disrupt, cluster, transport)
    load(path)              (recipe name, its arguments) from a file
    check_file(path)        (name, function, arguments, sweep), every argument checked: nothing runs
    run_file(path, out)     run a file and write ``out/report.json`` plus the recipe's figures

Two keys are special: ``model`` (a Lens spec: "tiny", a folder or a hub id) becomes the function's first argument,
or ``store`` (a path or URL) does::

    recipe = "detect"
    store = "stores/demo.zarr"
    names = "*.*.img.resid_post"
    k = 4

Pipeline call arguments go in a ``pipeline`` table (``pipeline = {guidance_scale = 4.0}``). A ``sweep`` table runs
the recipe once per combination of its lists (the model is loaded once; a recipe that takes ``runs``, as transport
does, gets one dict for the whole sweep, so points sharing a trajectory generate it once); each run's figures go to
a sub-folder and ``report.json`` holds every run's parameters and result::

    [sweep]
    k = [4, 16, 64]
    channel_set = ["massive", "random"]
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from ..errors import RecipeError
from .cluster import cluster
from .detect import detect
from .disrupt import disrupt
from .transport import transport

__all__ = ["RECIPES", "load", "check_file", "run_file"]

RECIPES = {"detect": detect, "disrupt": disrupt, "cluster": cluster, "transport": transport}


def load(path) -> tuple[str, dict]:
    with open(path, "rb") as f:
        spec = tomllib.load(f)
    name = spec.pop("recipe", None)
    if name not in RECIPES:
        raise RecipeError(f"{path}: 'recipe' must be one of {sorted(RECIPES)}, got {name!r}")
    return name, spec


def _label(combo: dict) -> str:
    return "_".join(f"{k}-{v}" for k, v in combo.items()).replace("/", "-").replace(" ", "") or "run"


def _check_type(path, key: str, value, default) -> None:
    """A recipe file's value must have the type of the function's default (an int where it is an int, a number
    where it is a float, a list where it is a sequence): ``k = "four"`` is an error before anything runs."""
    import inspect

    if default is inspect.Parameter.empty or default is None or value is None:
        return
    kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,), tuple: (list,), list: (list,),
             dict: (dict,)}.get(type(default))
    if kinds and (not isinstance(value, kinds) or (kinds != (bool,) and isinstance(value, bool))):
        raise RecipeError(f"{path}: {key}={value!r}: expected {type(default).__name__}"
                          f"{' (a list)' if kinds == (list,) else ''}")


def check_file(path) -> tuple:
    """(recipe name, function, arguments, sweep) of a recipe file, every argument checked against the function's
    parameters and their types: what ``run_file`` checks before it runs anything."""
    import inspect

    name, spec = load(path)
    fn = RECIPES[name]
    params = inspect.signature(fn).parameters
    sweep = spec.pop("sweep", {})
    unknown = [k for k in [*spec, *sweep] if k not in ("model", "store") and k not in params]
    if unknown:
        raise RecipeError(f"{path}: {name} has no arguments {unknown}; it takes {list(params)[1:]}")
    bad = {k: v for k, v in sweep.items() if not isinstance(v, list) or not v or k in spec}
    if bad:
        raise RecipeError(f"{path}: every [sweep] key needs a non-empty list of values and must not also be set "
                          f"outside the sweep; check {sorted(bad)}")
    for key, values in [*((k, [v]) for k, v in spec.items()), *sweep.items()]:
        if key in params:
            for v in values:
                _check_type(path, key, v, params[key].default)
    if "model" not in spec and "store" not in spec:
        raise RecipeError(f"{path}: give 'model' (a Lens spec) or 'store' (a store path or URL)")
    return name, fn, spec, sweep


def run_file(path, out, progress: bool = True) -> dict:
    import inspect
    import itertools

    from tqdm.auto import tqdm

    from .. import __version__
    from ..lens import Lens

    name, fn, spec, sweep = check_file(path)
    params = inspect.signature(fn).parameters
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RecipeError(f"{out} is a file: give a folder for report.json and the figures")
    kwargs = dict(spec)
    source_desc = {}
    if "model" in kwargs:
        lens = Lens(kwargs.pop("model"))
        source = lens
        source_desc = dict(model=spec["model"], model_class=type(lens.pipeline.transformer).__name__,
                           config_hash=lens.config_hash)
    elif "store" in kwargs:
        source = kwargs.pop("store")
        source_desc = dict(store=source)
    else:
        raise RecipeError(f"{path}: give 'model' (a Lens spec) or 'store' (a store path or URL)")
    out.mkdir(parents=True, exist_ok=True)
    combos = [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]
    if sweep and "runs" in params and "runs" not in kwargs:
        kwargs["runs"] = {}  # sweep points with the same trajectories generate them once (transport)
    runs = []
    for combo in tqdm(combos or [{}], desc=name, unit="run", disable=not (progress and sweep)):
        run_out = out / _label(combo) if sweep else out
        run_out.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        result = fn(source, **kwargs, **combo)
        seconds = time.time() - t0
        figures = []
        if hasattr(result, "figures"):
            figures = [str(p) for p in result.figures(run_out)]
        elif hasattr(result, "figure"):
            figures = [str(result.figure(run_out))]
        runs.append(dict(parameters=combo, seconds=round(seconds, 2), figures=figures,
                         summary=result.describe() if hasattr(result, "describe") else "", result=result.to_dict()))
    report = dict(recipe=name, file=str(path), parameters=spec, source=source_desc, dit_lens_version=__version__)
    if sweep:
        report.update(sweep=sweep, seconds=round(sum(r["seconds"] for r in runs), 2),
                      figures=[f for r in runs for f in r["figures"]], runs=runs)
    else:
        report.update(seconds=runs[0]["seconds"], figures=runs[0]["figures"], summary=runs[0]["summary"],
                      result=runs[0]["result"])
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    return report
