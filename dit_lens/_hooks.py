"""Plain torch hooks with the lens's names, edits and reads: for a transformer run by your own sampling loop.

    BareTransformer(transformer)   what a bare transformer stands in for a pipeline with (its dry run is one forward)
    HookRun(lens, ...)             a context manager: while open, every transformer call is one step (or one branch
                                   of a step, ``cfg="sequential"``); edits apply and reads are taken by hooks on the
                                   blocks, as ``Lens.generate`` does through nnsight
      .step, .read(name, cfg=), .rows(h, cfg=), .branch(h, cfg=)   the current call, for ``on_call(run)`` and
                                   ``on_value(run, name, h)`` (the recorder uses them)
      .cache, .timesteps, .steps_run            after it closes

Hooks see a block's output as its forward returns it, like nnsight's reads: output hooks go before any other forward
hooks on the block (``prepend=True``), which then run after them and see their edits; input hooks run after the
block's pre-hooks registered before them, as nnsight sees a block's inputs after its pre-hooks. With ``images``
given (a pipeline's call, whose image count is known), a batched call of only that many rows is a call without CFG,
all of it conditional, as in a traced run.
"""

from __future__ import annotations

from . import _streams
from ._run import Step, _splice, argument, batch_rows, text_length
from .cache import Cache
from .errors import ArgumentError, RunError

__all__ = ["BareTransformer", "HookRun", "CFG_STYLES"]

CFG_STYLES = (None, "batch", "sequential")  # how a loop runs CFG: none, both branches' rows in one call (in the arch's
# batch_order, [uncond; cond] for most), cond then uncond calls


class BareTransformer:
    """A transformer in the place of a pipeline: ``__call__`` is one forward (the lens's dry run)."""

    def __init__(self, transformer):
        self.transformer = transformer

    def __call__(self, **kwargs):
        return self.transformer(**kwargs)

    @property
    def components(self) -> dict:
        return {"transformer": self.transformer}

    def to(self, *args, **kwargs):
        self.transformer.to(*args, **kwargs)
        return self


class HookRun:
    def __init__(self, lens, plan, *, cfg=None, steps_kept=None, cache_cfg=None, watch=(), on_call=None,
                 on_value=None, order=("cond", "uncond"), images=None):
        if cfg not in CFG_STYLES:
            raise ArgumentError(f"cfg={cfg!r}: how the loop runs classifier-free guidance, one of {CFG_STYLES}")
        self.lens, self.plan, self.cfg, self.order, self.images = lens, plan, cfg, tuple(order), images
        self.steps_kept, self.cache_cfg, self.on_call, self.on_value = steps_kept, cache_cfg, on_call, on_value
        self.watch = set(watch)
        self.calls_per_step = 2 if cfg == "sequential" else 1
        self.cache, self.timesteps, self.step = Cache(), [], None
        self._calls, self._values, self._handles = 0, {}, []
        arch = lens.arch
        self._timestep, self._text, self._more = arch.timestep, arch.text, arch.text_more
        from ._validate import text_extra

        self._extra = text_extra(lens.pipeline.transformer, arch)

    # -- the current call ----------------------------------------------------------------------------------
    def _rows(self, h, cfg):
        if cfg is None:
            return slice(None)
        if self.cfg is None:
            raise ArgumentError(f"cfg={cfg!r} on a loop without CFG: pass cfg='batch' or 'sequential' to say how "
                                f"your loop runs classifier-free guidance")
        if self.cfg == "batch":
            rows = h.shape[0]
            if self.images is not None:  # a pipeline's call: the traced run's rule
                return batch_rows(rows, self.images, cfg, self.lens.arch.batch_order)
            half = rows // 2
            return slice(0, half) if cfg == self.lens.arch.batch_order[0] else slice(half, rows)
        return slice(None) if self.step.branch == cfg else None

    def rows(self, h, cfg: str | None = None):
        """``h``'s rows of branch ``cfg`` at this call (all for None), or None when this call holds none."""
        rows = self._rows(h, cfg)
        return None if rows is None else h[rows]

    def read(self, name: str, cfg: str | None = None):
        return self.rows(self._values[name], cfg)

    def branch(self, h, cfg: str | None = None) -> str:
        if cfg is not None:
            return cfg
        if self.cfg == "sequential":
            return self.step.branch
        if self.cfg == "batch" and not (self.images is not None and h.shape[0] == self.images):
            return "batch"
        return "cond"

    # -- hooks ---------------------------------------------------------------------------------------------
    def _begin(self, module, args, kwargs):
        call = self._calls
        self._calls += 1
        t = argument(args, kwargs, self._timestep)
        branch = self.order[call % 2] if self.cfg == "sequential" else "batch"
        self.step = Step(call // self.calls_per_step, call, branch,
                         text_length(args, kwargs, self._text, self._more, self._extra), t)
        if branch != "uncond" and t is not None:
            self.timesteps.append(float(t.flatten()[0]))
        self._values = {}

    def _end(self, module, args, kwargs, output):
        if self.on_call is not None:
            self.on_call(self)

    def _visit(self, name: str, edits, keep: bool, h):
        """Apply ``name``'s edits to its value ``h`` at this call, keep it for reads; returns the new value."""
        s = self.step
        for e in edits:
            if not e.applies_at(s.index):
                continue
            rows = self._rows(h, e.cfg)
            if rows is None:
                continue
            e.check(name, int(h.shape[1]), int(h.shape[2]), None, f"step {s.index} ({s.branch})")
            h = _splice(h, rows, e.apply(h[rows], s.index))
        if name in self.watch:
            if self.on_value is not None:
                self.on_value(self, name, h)  # as the block returns it (nothing held to the call's end)
            else:
                self._values[name] = h
        if keep and (self.steps_kept is None or s.index in self.steps_kept):
            rows = self._rows(h, self.cache_cfg)
            if rows is not None:
                self.cache[name, s.index, self.branch(h, self.cache_cfg)] = h[rows].detach().to("cpu", copy=True)
        return h

    def _out_hook(self, items):
        def hook(module, args, kwargs, output):
            for name, (kind, _, spec, index), edits, keep in items:
                stream = name.split(".")[2]
                h = _streams.get_output(output, spec, self.step.T, stream) if kind == "out" \
                    else _streams.get_item(output, index, self.step.T, stream)
                new = self._visit(name, edits, keep, h)
                if new is not h:
                    output = _streams.set_output(output, spec, self.step.T, stream, new) if kind == "out" \
                        else _streams.set_item(output, index, new, self.step.T, stream)
            return output
        return hook

    def _in_hook(self, items):
        def hook(module, args, kwargs):
            for name, (_, _, spec, _), edits, keep in items:
                stream = name.split(".")[2]
                h = _streams.get_input(args, kwargs, spec, self.step.T, stream)
                new = self._visit(name, edits, keep, h)
                if new is not h:
                    args, kwargs = _streams.set_input(args, kwargs, spec, self.step.T, stream, new)
            return args, kwargs
        return hook

    def __enter__(self):
        transformer = self.lens.pipeline.transformer
        by_module: dict = {}
        for name, edits, keep in self.plan:
            access = self.lens._table[name]
            by_module.setdefault((access[1], access[0] == "in"), []).append((name, access, edits, keep))
        self._handles.append(transformer.register_forward_pre_hook(self._begin, with_kwargs=True))
        for (path, is_input), items in by_module.items():
            module = transformer.get_submodule(path)
            self._handles.append(module.register_forward_pre_hook(self._in_hook(items), with_kwargs=True)
                                 if is_input else module.register_forward_hook(self._out_hook(items),
                                                                               with_kwargs=True, prepend=True))
        self._handles.append(transformer.register_forward_hook(self._end, with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        if exc[0] is not None:
            return False
        if self.cfg == "sequential" and self._calls % 2:
            raise RunError(f"cfg='sequential' expects a cond and an uncond call per step; the loop made "
                           f"{self._calls} calls")
        asked = {s for _, edits, _ in self.plan for e in edits for s in (e.steps or ())} | set(self.steps_kept or ())
        if asked and max(asked) >= self.steps_run:
            raise RunError(f"steps {sorted(s for s in asked if s >= self.steps_run)} were asked for, but the loop "
                           f"made {self.steps_run} steps: nothing was edited or read there")
        return False

    @property
    def steps_run(self) -> int:
        return -(-self._calls // self.calls_per_step)
