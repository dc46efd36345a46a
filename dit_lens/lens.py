"""Lens: a diffusers DiT pipeline under nnsight, addressed by canonical names.

    Lens(model, device=None, torch_dtype=None)   wrap a pipeline object, a save_pretrained folder, a hub id, or a
                                 registered model spec ("tiny"; see dit_lens.models), cast and moved first; validates
                                 every block against its adapter with a one-step dry run
      .names(pattern=None)       canonical names in execution (depth) order; globs expand
      .shape(name)               (tokens, channels) of a name in the dry run
      .tokens(name, branch, kwargs)   its tokens in a given call and CFG branch, where known before the run
      .depth(name)               its block's position in execution order across families
      .img_tokens / .txt_tokens  token counts of the dry run's streams
      .config_hash               which model this is (pipeline class + transformer config)
      .token_grid(height, width) (rows, cols) of the image tokens; (frames, rows, cols) for video
      .spec                      the registered ModelSpec of this pipeline's class, or None
      .calls_per_step(**kwargs)  transformer calls per denoising step of a pipeline call (2: sequential CFG)
      .check_steps(n)            ``num_inference_steps`` checked (required, >= 1)
      .info()                    model class, adapter, blocks with depth, names with shapes (JSON-ready)
      .generate(prompt, num_inference_steps=, edits=, cache=, ...) -> Generation   edit and/or record in one run
      .run_with_cache(prompt, names, steps=, ...) -> (images, Cache)              TransformerLens-style
      .trace(prompt, num_inference_steps=, ...)  an nnsight tracer for your own code; ``tracer.dit`` is a Run
      .hooks(edits=, cache=, cfg=, ...)  the same edits and reads by plain torch hooks, around a loop you run
                                 yourself: ``Lens(transformer, example=...)`` wraps a bare transformer this way
    Generation                   images, cache (a dit_lens.cache.Cache), timesteps, edits of one run
"""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from . import _hooks, _loading, _nnsight, models
from ._call import (
    check_call,
    count_images,
    counted,
    default,
    pipeline_images,
    prompt_args,
)
from ._checks import index as _index
from ._checks import whole
from ._loading import check_device, check_path
from ._run import Run
from ._validate import probe, text_extra
from .archs import arch_for
from .cache import Cache
from .edits import Edit
from .errors import (
    ArgumentError,
    OutOfRangeError,
    RunError,
    UnknownNameError,
    UnsupportedModelError,
)
from .names import expand

__all__ = ["Lens", "Generation"]


@dataclass
class Generation:
    images: object
    cache: Cache = field(default_factory=Cache)
    timesteps: list = field(default_factory=list)
    edits: list = field(default_factory=list)


class Lens:
    def __init__(self, model="tiny", *, example: dict | None = None, device=None, torch_dtype=None, cfg=None,
                 **load_kwargs):
        if device is not None:
            check_device(device)  # before any loading
        self.spec, self.cfg = None, None
        if isinstance(model, torch.nn.Module):  # a bare transformer, run by the user's own loop
            if example is None:
                raise ArgumentError("a bare transformer needs example=dict(...): the keyword arguments of one forward "
                                    "call, for the load check")
            if cfg not in _hooks.CFG_STYLES:
                raise ArgumentError(f"cfg={cfg!r}: how your loop runs classifier-free guidance, one of "
                                    f"{_hooks.CFG_STYLES}")
            self.model, self.cfg = None, cfg
            self.pipeline = _hooks.BareTransformer(model)
        elif isinstance(model, str) and model in models.names():
            self.spec = models.get(model)
            # a server rebuilds a spec by name (dit_lens.remote.DiT) when it was built with its defaults
            self.model = _nnsight.wrap_pipeline(self.spec.build(**load_kwargs),
                                                None if load_kwargs else {"spec": model})
        elif isinstance(model, str):
            check_path(model)
            dtype = {} if torch_dtype is None else {"torch_dtype": torch_dtype}
            if os.path.isdir(model):  # keyed by its path, so a self-hosted server can rebuild it (dit_lens.remote)
                from .remote import load_folder

                self.model = load_folder(model, **load_kwargs, **dtype)
            else:
                self.model = _nnsight.load(model, **load_kwargs, **dtype)
        elif not hasattr(model, "components"):
            raise UnsupportedModelError(f"Lens takes a diffusers pipeline, a transformer module, a save_pretrained "
                                        f"folder, a hub id or a model spec name {models.names()}; got "
                                        f"{type(model).__name__} {model!r:.60}")
        else:
            if load_kwargs:
                raise ArgumentError(f"loading arguments {sorted(load_kwargs)} apply when dit-lens loads a pipeline "
                                    f"(a folder, a hub id or a model spec); a pipeline object is used as it is")
            self.model = _nnsight.wrap_pipeline(model)
        if self.model is not None:
            self.pipeline = self.model.pipeline
        if not (isinstance(model, str) and model not in models.names()):
            _loading.apply_dtype(self.pipeline, torch_dtype)  # from_pretrained took it when loading
        self.spec = self.spec or models.for_pipeline(self.pipeline)
        if example is None and self.spec is not None:
            example = self.spec.example
        if device is not None:  # before the validation dry run, which then runs there too
            self.pipeline.to(device)
        transformer = getattr(self.pipeline, "transformer", None)
        if transformer is None:
            raise UnsupportedModelError(f"{type(self.pipeline).__name__} has no 'transformer' component; dit-lens "
                                        f"reads Diffusion Transformer pipelines")
        for component in self.pipeline.components.values():
            if isinstance(component, torch.nn.Module):
                component.eval()  # components built from a config start in train mode (dropout)
        _loading.check_loadable(self.pipeline)
        self.arch = arch_for(transformer)
        self.example = dict(example) if example is not None else self._default_example()
        self.arch.calls_per_step(self.example, self.pipeline)  # components or arguments the adapter refuses
        try:
            self._probe = probe(self.pipeline, self.arch, self.example)
        except TypeError as e:
            raise UnsupportedModelError(f"the validation dry run of {type(self.pipeline).__name__} failed ({e}); pass "
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

    @property
    def img_tokens(self) -> int:
        return self._probe.img_tokens

    @property
    def txt_tokens(self) -> int:
        return self._probe.txt_tokens

    @property
    def config_hash(self) -> str:
        return models.config_hash(self.pipeline)

    def token_grid(self, height=None, width=None, tokens: int | None = None) -> tuple | None:
        """(rows, cols) of ``tokens`` image tokens (default: the validation call's) for an image of ``height`` x
        ``width`` (square when not given), or None when the token count does not factor so; for a video
        transformer (frames, rows, cols) as the validation call measured it (None for another token count)."""
        if self._probe.grid is not None:
            return self._probe.grid if tokens in (None, self.img_tokens) else None
        n = self.img_tokens if tokens is None else tokens
        ratio = (height / width) if height and width else 1.0
        rows = int(round((n * ratio) ** 0.5))
        return (rows, n // rows) if rows and rows * (n // rows) == n else None

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
        raise UnknownNameError(f"{name!r}: no such block")

    # -- running ---------------------------------------------------------------------------------------------
    def calls_per_step(self, **kwargs) -> int:
        """Transformer calls per denoising step of a pipeline call with these keyword arguments (the adapter's
        rule): 2 where the pipeline runs CFG as separate cond and uncond calls, else 1."""
        return self.arch.calls_per_step(kwargs, self.pipeline)

    def _prepare(self, remote) -> None:
        """Before a run: the pipeline is still traceable, nnsight sees every module (offload hooks re-added since the
        last run are re-instrumented), and blocks with other forward hooks are named."""
        if self.model is None:
            raise ArgumentError("this lens wraps a bare transformer, which your own loop runs: use "
                                "`with lens.hooks(...):` around the loop (generate and trace run a pipeline)")
        if remote:
            _nnsight.ship_by_value()  # the server needs no dit-lens
            return
        _loading.check_loadable(self.pipeline, warn=False)
        _nnsight.reinstrument(self.model)
        self._warn_foreign_hooks()

    def _warn_foreign_hooks(self) -> None:
        hooked = _loading.foreign_hooks(self.pipeline.transformer, [b.path for b in self._probe.blocks])
        if hooked:
            warnings.warn(f"blocks {hooked[:4]} have torch forward hooks: dit-lens reads (and edits) a block's output "
                          f"as its forward returns it, before those hooks run, so a hook that changes the output "
                          f"makes the next block's input differ from what dit-lens reads", RuntimeWarning, stacklevel=4)

    def _make_run(self, tracer, prompt, num_inference_steps, kwargs, remote) -> Run:
        cfg = self.arch.sequential_cfg
        steps = self.steps_of(num_inference_steps, **kwargs) if remote else num_inference_steps
        return Run(tracer, self.model, self._table, images=count_images(prompt, kwargs), live=not remote,
                   steps=steps, calls_per_step=self.calls_per_step(**kwargs),
                   order=cfg.order if cfg else ("cond",), timestep=self.arch.timestep, text=self.arch.text,
                   text_extra=text_extra(self.pipeline.transformer, self.arch), text_more=self.arch.text_more,
                   pooled=self.arch.pooled, batch_order=self.arch.batch_order)

    @staticmethod
    def check_steps(num_inference_steps) -> int:
        """``num_inference_steps`` as an int, or an error: it is required (nnsight's traced runs otherwise silently
        default to one denoising step) and at least 1."""
        if num_inference_steps is None:
            raise ArgumentError("num_inference_steps is required: nnsight's traced runs otherwise silently default "
                                "to a single denoising step")
        return whole("num_inference_steps", num_inference_steps)

    def trace(self, prompt=None, *, num_inference_steps=None, seed=None, remote=False, **kwargs):
        """An nnsight tracer over one generation; ``tracer.dit`` is the Run (steps, read, write, apply)::

            with lens.trace(prompts, num_inference_steps=20, seed=0) as tracer:
                for step in tracer.dit.steps():
                    h = tracer.dit.read("double.1.img.resid_post")
                images = lens.model.output.save()
        """
        n = self.check_steps(num_inference_steps)
        self._prepare(remote)
        check_call(prompt, seed, kwargs)
        tracer = self.model.trace(*prompt_args(prompt), num_inference_steps=n, seed=seed, remote=remote,
                                  **kwargs)
        tracer.dit = self._make_run(tracer, prompt, n, kwargs, remote)
        return tracer

    def steps_of(self, num_inference_steps, **kwargs) -> int:
        """The denoising steps a pipeline call with these arguments makes: as many as its ``sigmas`` or
        ``timesteps`` when given; else ``num_inference_steps``, shortened by an img2img ``strength`` (given, or the
        pipeline's default) as diffusers' img2img and inpainting pipelines do. Each run checks it against what the
        pipeline's scheduler then does."""
        n = self.check_steps(num_inference_steps)
        for key in ("sigmas", "timesteps"):
            if kwargs.get(key) is not None:
                return len(kwargs[key])
        strength = kwargs.get("strength", default(self.pipeline, "strength"))
        if strength is None:
            return n
        if not 0 < float(strength) <= 1:
            raise ArgumentError(f"strength={strength}: expected a value in (0, 1]")
        return n - int(max(n - min(n * float(strength), n), 0))

    def tokens(self, name: str, branch: str = "cond", kwargs: dict | None = None) -> int | None:
        """Tokens of ``name`` in a pipeline call with arguments ``kwargs``, on CFG ``branch`` ("cond" or
        "uncond"), where known before the run: text from the (negative) prompt embeddings, image tokens scaled from
        the dry run by the call's height x width; None where only the run can tell (its first call checks then).
        ``shape(name)`` is the dry run's."""
        kwargs = {} if kwargs is None else kwargs
        tokens = self.shape(name)[0]
        if name.split(".")[2] == "txt":
            prefix = "" if branch == "cond" else "negative_"
            parts = [kwargs.get(prefix + k) for k in ("prompt_embeds", *(m[2] for m in self.arch.text_more))]
            if not all(hasattr(p, "shape") for p in parts):
                return None  # a prompt's length is the tokenizer's to say
            return sum(int(p.shape[1]) for p in parts) + text_extra(self.pipeline.transformer, self.arch)
        size, size0 = (kwargs.get("height"), kwargs.get("width")), (self.example.get("height"),
                                                                     self.example.get("width"))
        if size == size0 and kwargs.get("image") is None:
            return tokens
        if None in size or None in size0:
            return None
        scaled = tokens * size[0] * size[1] / (size0[0] * size0[1])
        return int(scaled) if float(scaled).is_integer() else None

    def _plan(self, edits, cache, cache_steps, n: int, kwargs: dict):
        """[(name, [edits], keep)] in execution order, every name, index and step checked before the run (token
        indices per CFG branch, where the branch's length is known before the run)."""
        branches = ("cond", "uncond") if self.calls_per_step(**kwargs) == 2 else ("cond",)
        per_name: dict[str, list] = {}
        for e in edits:
            if not isinstance(e, Edit):
                raise ArgumentError(f"edits must be dit_lens Edit records (zero, set_to, ...), got {type(e).__name__}")
            for name in self.names(e.names):
                channels = self.shape(name)[1]
                for b in branches if e.cfg is None else ((e.cfg,) if e.cfg in branches else branches[:1]):
                    e.check(name, self.tokens(name, b, kwargs), channels, n,
                            f"the {b} calls" if len(branches) == 2 else "")
                per_name.setdefault(name, []).append(e)
        keep = set(self.names(cache)) if cache else set()
        if cache_steps is not None and n is not None:
            cache_steps = [_index("cache_steps", s) for s in cache_steps]
            bad = [s for s in cache_steps if not 0 <= s < n]
            if bad:
                raise OutOfRangeError(f"cache_steps {bad} out of range: the run has steps 0..{n - 1}")
        return [(name, per_name.get(name, []), name in keep) for name in self.names()
                if name in per_name or name in keep]

    def generate(self, prompt=None, *, num_inference_steps=None, seed=None, edits: Sequence[Edit] = (),
                 cache=None, cache_steps: Sequence[int] | None = None, cache_cfg: str | None = None,
                 remote=False, on_step=None, **kwargs) -> Generation:
        """Run the pipeline once with ``edits`` applied and the ``cache`` names (globs) recorded after them, at
        ``cache_steps`` (default all) and CFG branch ``cache_cfg`` (default all rows). ``on_step(run, step)``, if
        given, is called at every transformer call before the edits (e.g. to ``run.set_pooled(...)``)."""
        n = self.check_steps(num_inference_steps)
        check_call(prompt, seed, kwargs)
        if cache_cfg not in (None, "cond", "uncond"):
            raise ArgumentError(f"cache_cfg={cache_cfg!r}: 'cond', 'uncond' or None (every row)")
        expected = self.steps_of(n, **kwargs)
        plan = self._plan(list(edits), cache, cache_steps, expected, kwargs)
        steps_kept = None if cache_steps is None else set(int(s) for s in cache_steps)
        model = self.model
        output = None  # stays None if the pipeline made fewer transformer calls than expected
        tracer = self.trace(prompt, num_inference_steps=n, seed=seed, remote=remote, **kwargs)
        run = tracer.dit  # made outside the block: a server runs only the block, which never touches the Lens
        with counted(self.pipeline.transformer, not remote) as calls, tracer:
            saved = dict().save()
            stamps = list().save()
            for step in run.steps():
                stamps.append((step.index, step.branch, float(step.timestep.flatten()[0])))
                if on_step is not None:
                    on_step(run, step)
                first = step.call < run.calls_per_step  # each branch's first call: every edit's indices checked
                for name, name_edits, keep in plan:
                    h = None
                    if first and any(e.tokens is not None for e in name_edits):
                        h = run.read(name)
                        for e in name_edits:
                            run.check(e, name, h)
                    for e in name_edits:
                        if e.applies_at(step.index):
                            h = run.apply(e, name, h)
                    if keep and (steps_kept is None or step.index in steps_kept):
                        h = run.read(name, cache_cfg) if h is None or cache_cfg is not None else h
                        if h is not None:
                            saved[(name, step.index, run.branch(h, cache_cfg))] = h.detach().to("cpu", copy=True)
            output = model.output.save()
        return self._finish(output, saved, stamps, calls, list(edits), cache_steps)

    def _finish(self, output, saved, stamps, calls, edits, cache_steps=None) -> Generation:
        self._check_run(output, stamps, calls)
        ran = len({s for s, _, _ in stamps})
        asked = {s for e in edits for s in (e.steps or ())} | {int(s) for e in edits if isinstance(e.value, dict)
                                                              for s in e.value} | set(cache_steps or ())
        if asked and max(asked) >= ran:
            raise RunError(f"steps {sorted(s for s in asked if s >= ran)} were asked for, but the run made {ran} "
                           f"steps (img2img strength or custom sigmas shorten a run): nothing was edited or read there")
        cache = Cache(saved)
        timesteps = [t for s, b, t in stamps if b in ("batch", "cond")]
        return Generation(images=pipeline_images(output), cache=cache, timesteps=timesteps, edits=edits)

    def _check_run(self, output, stamps, calls) -> None:
        """The run's transformer calls, as the loop saw them, are whole steps with one timestep each, and (locally)
        every call the pipeline made: anything else is a RunError, never mislabelled steps."""
        by_step: dict[int, set] = {}
        for s, _, t in stamps:
            by_step.setdefault(s, set()).add(t)
        distinct = {t for ts in by_step.values() for t in ts}
        whole = calls.get("n") is None or calls["n"] == len(stamps)
        if output is None or not whole or any(len(ts) != 1 for ts in by_step.values()) \
                or len(distinct) != len(by_step) or sorted(by_step) != list(range(len(by_step))):
            seen = f"; the pipeline called the transformer {calls['n']} times" if calls.get("n") is not None else ""
            raise RunError(f"{type(self.pipeline).__name__} did not call the transformer once per step (or once per "
                           f"CFG branch) as {self.arch.source} expects: saw timesteps {stamps}{seen}")

    def hooks(self, *, edits: Sequence[Edit] = (), cache=None, cache_steps: Sequence[int] | None = None,
              cache_cfg: str | None = None, cfg=None, watch=(), on_call=None) -> _hooks.HookRun:
        """Edits and reads by plain torch hooks while the block is open, for a loop you run yourself (a bare
        transformer, or a pipeline you call): each transformer call is one step (``cfg="sequential"``: a cond and an
        uncond call per step; ``"batch"``: both branches' rows, in ``lens.arch.batch_order``; default the lens's
        ``cfg``). Names and indices are checked here, steps when the block closes; ``.cache`` and ``.timesteps`` are
        filled as the loop runs::

            with lens.hooks(cache="single.*.img.resid_post", edits=[zero("double.1.img.resid_post")]) as run:
                for t in timesteps:
                    v = transformer(hidden_states=x, timestep=t, ...)[0]
                    ...
            run.cache["single.3.img.resid_post", 10]
        """
        cfg = self.cfg if cfg is None else cfg
        keep = set(self.names(cache)) if cache else set()
        hooked = sorted(keep | set(self.names(list(watch))) if watch else keep)
        plan = self._plan(list(edits), hooked or None, None, None, {})
        plan = [(name, name_edits, name in keep) for name, name_edits, _ in plan]
        return _hooks.HookRun(self, plan, cfg=cfg, steps_kept=None if cache_steps is None else set(cache_steps),
                              cache_cfg=cache_cfg, watch=self.names(list(watch)) if watch else (), on_call=on_call)

    def _call_hooks(self, prompt, kwargs: dict, *, watch, on_value, on_call) -> _hooks.HookRun:
        """Plain hooks for one call of the pipeline with ``prompt`` and ``kwargs`` (or of a bare transformer's loop):
        CFG style, branch order and image count as a trace of that call has them (the recorder's local path)."""
        watch = self.names(list(watch))
        plan = [(name, [], False) for name, _, _ in self._plan([], watch, None, None, {})]
        if self.model is None:
            return _hooks.HookRun(self, plan, cfg=self.cfg, watch=watch, on_call=on_call, on_value=on_value)
        _loading.check_loadable(self.pipeline, warn=False)
        images = count_images(prompt, kwargs)  # the call's prompts checked (no seed here: generators are given)
        self._warn_foreign_hooks()  # before this run's own hooks are added
        sequential = self.calls_per_step(**kwargs) == 2
        return _hooks.HookRun(self, plan, cfg="sequential" if sequential else "batch", watch=watch, on_call=on_call,
                              on_value=on_value, order=self.arch.sequential_cfg.order if sequential else ("cond",),
                              images=images)

    def run_with_cache(self, prompt=None, names="*", *, num_inference_steps=None, steps=None, cfg=None, **kwargs):
        """Generate and return ``(images, Cache)`` of ``names`` (globs) at ``steps`` (default all) and CFG branch
        ``cfg`` (default: every row; see dit_lens.cache for the branch labels)."""
        g = self.generate(prompt, num_inference_steps=num_inference_steps, cache=names, cache_steps=steps,
                          cache_cfg=cfg, **kwargs)
        return g.images, g.cache
