"""A stand-in for a remote nnsight server that has no dit-lens: ``python remote_worker.py SPEC OUT BLOB...``.

Importing dit_lens is made to fail first. The pipeline is rebuilt from SPEC (diffusers class names, the transformer's
config and weights, the scheduler's config) with diffusers alone, each serialized request (BLOB, as nnsight's client
sends it) is deserialized and run against it as a server runs it, and what each saved is written to OUT.
"""

from __future__ import annotations

import importlib.abc
import sys


class _NoDitLens(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "dit_lens" or name.startswith("dit_lens."):
            raise ModuleNotFoundError(f"No module named {name!r} (this server has no dit-lens)")


def main(spec_path: str, out_path: str, *blobs: str) -> None:
    sys.meta_path.insert(0, _NoDitLens())
    import diffusers
    import torch
    from nnsight.modeling.diffusion import DiffusionModel, _PipelineModule
    from nnsight.schema.request import RequestModel
    from nnsight.tracing.tracer import dec, inc

    spec = torch.load(spec_path, weights_only=False)
    transformer = getattr(diffusers, spec["transformer"]).from_config(spec["config"])
    transformer.load_state_dict(spec["weights"])
    scheduler = getattr(diffusers, spec["scheduler"]).from_config(spec["scheduler_config"])
    pipe = getattr(diffusers, spec["pipeline"])(transformer=transformer, scheduler=scheduler,
                                                **{k: None for k in spec["absent"]}, **spec["options"])
    pipe.set_progress_bar_config(disable=True)
    transformer.eval()
    model = DiffusionModel(_PipelineModule(pipe))
    model.pipeline = pipe
    results = []
    for path in blobs:
        with open(path, "rb") as f:
            tracer = RequestModel.deserialize(f.read(), model._remoteable_persistent_objects(), compress=False)
        inc()
        try:
            tracer.execute(tracer.info.code)
        finally:
            dec()
        saved = dict(tracer.info.frame.f_locals)
        results.append({k: v for k, v in saved.items() if k in spec["keep"]})
    assert "dit_lens" not in sys.modules
    torch.save(results, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
