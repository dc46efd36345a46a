"""Recipes: plain functions over the public API, each also runnable from a file (``dit-lens run FILE``).

    detect(source, ...) -> Detection         massive channels per layer, from a store or a live Lens
    disrupt(lens, ...) -> Disruption         knock them out during generation, against equal-size controls
    cluster(store, ...) -> Clustering        k-means of image tokens on them: spatial organisation
    transport(lens, ...) -> Transport        inject them from a source trajectory into a target's
    RECIPES, load(path), run_file(path, out) recipe files (runner.py)

What is model-specific comes in as arguments: a ``scorer`` (dit_lens.scoring: per-image scores, transport success,
subject masks; by default the model spec's own, e.g. the embedded model's evaluator, or none) and ``masks``. Writing
a new recipe = one function returning an object with ``to_dict()`` (and optionally ``figures(out)`` or
``figure(out)``) + one entry in ``RECIPES`` + one file in recipes/ (docs/extending.md).
"""

from .cluster import Clustering, cluster
from .detect import Detection, detect
from .disrupt import Disruption, disrupt
from .runner import RECIPES, load, run_file
from .transport import Transport, transport

__all__ = ["detect", "disrupt", "cluster", "transport", "Detection", "Disruption", "Clustering", "Transport",
           "RECIPES", "load", "run_file"]
