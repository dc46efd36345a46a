"""Lens: a diffusers DiT pipeline under nnsight, addressed by canonical names.

    Lens(model, device=None)     wrap a pipeline object, a save_pretrained folder, a hub id, or "tiny" (moved to
                                 ``device`` first); validates every block against its adapter with a one-step dry run
      .names(pattern=None)       canonical names in execution (depth) order; globs expand
      .shape(name)               (tokens, channels) of a name in the dry run
      .info()                    model class, adapter, blocks with depth, names with shapes (JSON-ready)
      .generate(prompt, num_inference_steps=, edits=, cache=, ...) -> Generation   edit and/or record in one run
      .run_with_cache(prompt, names, steps=, ...) -> (images, Cache)              TransformerLens-style
      .trace(prompt, num_inference_steps=, ...)  an nnsight tracer for your own code; ``tracer.dit`` is a Run
    Cache                        dict keyed by (name, step) with .stack(name)
    Generation                   images, cache, timesteps, edits of one run
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Sequence

import torch

from . import _nnsight
from ._run import Run
from ._validate import probe, text_extra
from .archs import arch_for
from .edits import Edit
from .names import NameError_, expand

TINY = "tiny"


class Cache(dict):
    """Activations keyed by ``(name, step)``; each value is (rows, tokens, channels) on the CPU."""

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(n for n, _ in self))

    @property
    def steps(self) -> list[int]:
        return sorted({s for _, s in self})

    def stack(self, name: str) -> torch.Tensor:
        """(steps, rows, tokens, channels) of one name over its cached steps."""
        steps = sorted(s for n, s in self if n == name)
        if not steps:
            raise KeyError(f"{name!r} is not in this cache; cached names: {self.names}")
        return torch.stack([self[name, s] for s in steps])


@dataclass
class Generation:
    images: object
    cache: Cache = field(default_factory=Cache)
    timesteps: list = field(default_factory=list)
    edits: list = field(default_factory=list)


def _count_images(prompt, kwargs) -> int:
    if prompt is None:
        embeds = kwargs.get("prompt_embeds")
        if embeds is None:
            raise ValueError("give a prompt (or prompt_embeds)")
        n = int(embeds.shape[0])
    else:
        n = 1 if isinstance(prompt, str) else len(prompt)
    return n * int(kwargs.get("num_images_per_prompt") or 1)


def _prompt_args(prompt) -> tuple:
    """Positional inputs for nnsight: none when the call is driven by ``prompt_embeds`` (nnsight counts rows from
    the first positional input)."""
    return () if prompt is None else (prompt,)


def _check_device(device) -> None:
    device = torch.device(device)  # an unknown type raises here, naming the valid ones
    if device.type == "cuda" and not torch.cuda.is_available():
        built = "with" if torch.backends.cuda.is_built() else "without"
        raise ValueError(f"device {str(device)!r}: torch {torch.__version__} (built {built} CUDA) sees no CUDA device")


class Lens:
    def __init__(self, model=TINY, *, example: dict | None = None, device=None, **load_kwargs):
        if device is not None:
            _check_device(device)  # before any loading
        if isinstance(model, str):
            if model == TINY:
                from .tiny import pipeline as tiny

                pipeline = tiny.build()
                self.model = _nnsight.wrap_pipeline(pipeline)
                example = example or {"prompt": ["a red circle on a blue background"], "num_inference_steps": 1}
            else:
                self.model = _nnsight.load(model, **load_kwargs)
        else:
            self.model = _nnsight.wrap_pipeline(model)
        self.pipeline = self.model.pipeline
        if device is not None:  # before the validation dry run, which then runs there too
            self.pipeline.to(device)
        transformer = getattr(self.pipeline, "transformer", None)
        if transformer is None:
            raise TypeError(f"{type(self.pipeline).__name__} has no 'transformer' component; dit-lens reads "
                            f"Diffusion Transformer pipelines")
        for component in self.pipeline.components.values():
            if isinstance(component, torch.nn.Module):
                component.eval()  # components built from a config start in train mode (dropout)
        self.arch = arch_for(transformer)
        self.example = dict(example) if example is not None else self._default_example()
        try:
            self._probe = probe(self.pipeline, self.arch, self.example)
        except TypeError as e:
            raise TypeError(f"the validation dry run of {type(self.pipeline).__name__} failed ({e}); pass "
                            f"Lens(..., example=dict(...)) with a one-step call that works for it") from e
        self._table = self._access_table()

    # -- names -----------------------------------------------------------------------------------------------
    def _default_example(self) -> dict:
        params = inspect.signature(self.pipeline.__call__).parameters
        ex = {"prompt": "a photo", "num_inference_steps": 1}
        if "output_type" in params:
            ex["output_type"] = "latent"
        for k in ("height", "width"):
            if k in params:
                ex[k] = 64
        return ex

    def _access_table(self) -> dict:
        table = {}
        for b in self._probe.blocks:
            for name in self._probe.shapes:
                fam, i, stream, site = name.split(".")
                if (fam, int(i)) != (b.family, b.index):
                    continue
                if site == "resid_post":
                    table[name] = ("out", b.path, b.layout, None)
                elif site == "resid_pre":
                    table[name] = ("in", b.path, b.inputs, None)
                else:
                    sub, index = b.sites[site][stream]
                    table[name] = ("sub", f"{b.path}.{sub}", None, index)
        return table

    def names(self, pattern: str | Sequence[str] | None = None) -> list[str]:
        valid = list(self._probe.shapes)
        return valid if pattern is None else expand(pattern, valid)

    def shape(self, name: str) -> tuple[int, int]:
        if name not in self._probe.shapes:
            expand(name, list(self._probe.shapes))  # raises with the valid ranges and closest match
        return self._probe.shapes[name]

    def __contains__(self, name: str) -> bool:
        return name in self._probe.shapes

    def info(self) -> dict:
        blocks = [{"block": f"{b.family}.{b.index}", "module": f"transformer.{b.path}", "depth": d}
                  for d, b in enumerate(self._probe.blocks)]
        return {
            "pipeline": type(self.pipeline).__name__,
            "transformer": type(self.pipeline.transformer).__name__,
            "adapter": self.arch.source,
            "img_tokens": self._probe.img_tokens,
            "txt_tokens": self._probe.txt_tokens,
            "blocks": blocks,
            "names": {n: {"tokens": t, "channels": c} for n, (t, c) in self._probe.shapes.items()},
        }

    def depth(self, name: str) -> int:
        fam, i = name.split(".")[:2]
        for d, b in enumerate(self._probe.blocks):
            if (b.family, b.index) == (fam, int(i)):
                return d
        raise NameError_(f"{name!r}: no such block")

    # -- running ---------------------------------------------------------------------------------------------
    def _calls_per_step(self, kwargs) -> int:
        cfg = self.arch.sequential_cfg
        if cfg is None:
            return 1
        scale = kwargs.get(cfg.scale, cfg.default)
        active = scale is not None and scale > 1 and (not cfg.needs or any(kwargs.get(k) is not None
                                                                             for k in cfg.needs))
        return 2 if active else 1

    def _make_run(self, tracer, prompt, num_inference_steps, kwargs) -> Run:
        cfg = self.arch.sequential_cfg
        return Run(tracer, self.model.transformer, self._table, images=_count_images(prompt, kwargs),
                   steps=num_inference_steps, calls_per_step=self._calls_per_step(kwargs),
                   order=cfg.order if cfg else ("cond",), timestep=self.arch.timestep, text=self.arch.text,
                   text_extra=text_extra(self.pipeline.transformer, self.arch), pooled=self.arch.pooled)

    @staticmethod
    def _need_steps(num_inference_steps) -> int:
        if num_inference_steps is None:
            raise ValueError("num_inference_steps is required: nnsight's traced runs otherwise silently default "
                             "to a single denoising step")
        if int(num_inference_steps) < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        return int(num_inference_steps)

    def trace(self, prompt=None, *, num_inference_steps=None, seed=None, remote=False, **kwargs):
        """An nnsight tracer over one generation; ``tracer.dit`` is the Run (steps, read, write, apply)::

            with lens.trace(prompts, num_inference_steps=20, seed=0) as tracer:
                for step in tracer.dit.steps():
                    h = tracer.dit.read("double.1.img.resid_post")
                images = lens.model.output.save()
        """
        n = self._need_steps(num_inference_steps)
        tracer = self.model.trace(*_prompt_args(prompt), num_inference_steps=n, seed=seed, remote=remote,
                                  **kwargs)
        tracer.dit = self._make_run(tracer, prompt, n, kwargs)
        return tracer

    def _plan(self, edits, cache, cache_steps, n: int):
        """[(name, [edits], keep)] in execution order, every name, index and step checked before the run."""
        per_name: dict[str, list] = {}
        for e in edits:
            if not isinstance(e, Edit):
                raise TypeError(f"edits must be dit_lens Edit records (zero, set_to, ...), got {type(e).__name__}")
            for name in self.names(e.names):
                tokens, channels = self.shape(name)
                e.check(name, tokens, channels, n)
                per_name.setdefault(name, []).append(e)
        keep = set(self.names(cache)) if cache else set()
        if cache_steps is not None:
            bad = [s for s in cache_steps if not 0 <= s < n]
            if bad:
                raise IndexError(f"cache_steps {bad} out of range: the run has steps 0..{n - 1}")
        return [(name, per_name.get(name, []), name in keep) for name in self.names()
                if name in per_name or name in keep]

    def generate(self, prompt=None, *, num_inference_steps=None, seed=None, edits: Sequence[Edit] = (),
                 cache=None, cache_steps: Sequence[int] | None = None, cache_cfg: str | None = None,
                 remote=False, on_step=None, **kwargs) -> Generation:
        """Run the pipeline once with ``edits`` applied and the ``cache`` names (globs) recorded after them, at
        ``cache_steps`` (default all) and CFG branch ``cache_cfg`` (default all rows). ``on_step(run, step)``, if
        given, is called at every transformer call before the edits (e.g. to ``run.set_pooled(...)``)."""
        n = self._need_steps(num_inference_steps)
        plan = self._plan(list(edits), cache, cache_steps, n)
        steps_kept = None if cache_steps is None else set(int(s) for s in cache_steps)
        model = self.model
        output = None  # stays None if the pipeline made fewer transformer calls than expected
        with model.generate(*_prompt_args(prompt), num_inference_steps=n, seed=seed, remote=remote,
                            **kwargs) as tracer:
            run = self._make_run(tracer, prompt, n, kwargs)
            saved = dict().save()
            stamps = list().save()
            for step in run.steps():
                stamps.append((step.index, step.branch, float(step.timestep.flatten()[0])))
                if on_step is not None:
                    on_step(run, step)
                for name, name_edits, keep in plan:
                    h = None
                    for e in name_edits:
                        if e.applies_at(step.index):
                            h = run.apply(e, name, h)
                    if keep and (steps_kept is None or step.index in steps_kept):
                        h = run.read(name, cache_cfg) if h is None or cache_cfg is not None else h
                        if h is not None:
                            saved[(name, step.index, step.branch)] = h.detach().to("cpu", copy=True)
            output = model.output.save()
        return self._finish(output, saved, stamps, n, list(edits))

    def _finish(self, output, saved, stamps, n, edits) -> Generation:
        calls = len(stamps)
        per = calls // n if n else 0
        by_step: dict[int, set] = {}
        for s, _, t in stamps:
            by_step.setdefault(s, set()).add(t)
        distinct = {t for ts in by_step.values() for t in ts}
        if output is None or len(by_step) != n or any(len(ts) != 1 for ts in by_step.values()) \
                or len(distinct) != n:
            raise RuntimeError(f"{type(self.pipeline).__name__} did not call the transformer once per step (or once "
                               f"per CFG branch) as {self.arch.source} expects: saw timesteps {stamps}")
        cache = Cache()
        for (name, s, branch), v in saved.items():
            if per > 1 and branch != "batch":
                key = (name, s, branch)
                cache[key] = v
            else:
                cache[name, s] = v
        timesteps = [t for s, b, t in stamps if b in ("batch", "cond")]
        return Generation(images=output.images, cache=cache, timesteps=timesteps, edits=edits)

    def run_with_cache(self, prompt=None, names="*", *, num_inference_steps=None, steps=None, cfg=None, **kwargs):
        """Generate and return ``(images, Cache)`` of ``names`` (globs) at ``steps`` (default all)."""
        g = self.generate(prompt, num_inference_steps=num_inference_steps, cache=names, cache_steps=steps,
                          cache_cfg=cfg, **kwargs)
        return g.images, g.cache
