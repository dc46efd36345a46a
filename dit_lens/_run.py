"""Inside an nnsight trace: denoising steps, CFG branches and named reads/writes (what ``Lens.trace`` hands out).

    Step                 one transformer call: step index, call index, branch, text length, timestep
    argument(args, kwargs, (keyword, position))   a call's argument, given by keyword or position
    batch_rows(rows, images, cfg, batch_order)   the rows of branch ``cfg`` in a batched call (traced or hooked)
    Run(...)             small, picklable (remote-safe) view of one traced generation
      .steps()           bounded iteration over exactly the transformer calls of the run (their number read from
                         the pipeline's scheduler at the first call of a local run, or predicted by the client for
                         a remote one; ``.num_steps`` then holds the steps run)
      .read(name, cfg=)  the current call's value of a canonical name (all rows, or one CFG branch)
      .branch(h, cfg=)   the cache branch label of a value read with ``cfg`` at this call (see dit_lens.cache)
      .write(name, value, cfg=)   assign it (never in place: survives nnsight's multi-invoke batching)
      .check(edit, name, h)   raise if an Edit's tokens or channels do not fit this call's value
      .apply(edit, name) apply an Edit at the current call, if it applies here (checked first)
      .pooled() / .set_pooled(value)   the current call's pooled text embedding (Flux, SD3: the adaLN conditioning)
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _streams
from .errors import ArgumentError

__all__ = ["Step", "Run", "argument", "batch_rows"]


@dataclass
class Step:
    index: int  # denoising step
    call: int  # transformer call
    branch: str  # "batch" (rows of both branches, in the arch's batch_order, or no CFG) | "cond" | "uncond"
    T: int | None  # text length of this call
    timestep: object = None


def argument(args, kwargs, spec):
    kw, pos = spec[:2]
    return kwargs[kw] if kw in kwargs else (args[pos] if pos < len(args) else None)


def text_length(args, kwargs, text: tuple, more: tuple = (), extra: int = 0) -> int | None:
    """Tokens of the text stream inside the blocks of a transformer call: its text argument's, any further text
    arguments' (``Arch.text_more``) and ``extra`` prepended tokens; None when the text argument is not a tensor."""
    first = argument(args, kwargs, text)
    if not hasattr(first, "shape"):
        return None
    return int(first.shape[1]) + extra + sum(int(v.shape[1]) for v in (argument(args, kwargs, m) for m in more)
                                             if hasattr(v, "shape"))


def batch_rows(rows: int, images: int, cfg: str, batch_order: tuple) -> slice:
    """Rows of branch ``cfg`` in a batched call of ``rows`` rows for ``images`` images: a half, in ``batch_order``,
    when the call holds both branches; all of them for "cond" when it holds one (a run without CFG)."""
    if rows == 2 * images:
        return slice(0, images) if cfg == batch_order[0] else slice(images, rows)
    if cfg == "cond" and rows == images:
        return slice(None)  # no CFG in this run: every row is conditional
    raise ArgumentError(f"cfg={cfg!r} but this run's transformer calls hold {rows} rows for {images} images: no "
                        f"{cfg} branch (is guidance off?)")


def _splice(h, rows: slice, new):
    """``h`` with its ``rows`` (a slice with an explicit start and stop, or ``slice(None)``) replaced by ``new``: a
    new tensor, never an in-place edit (in-place edits are dropped under nnsight's multi-invoke batching)."""
    import torch

    if rows == slice(None):
        return new
    parts = [h[: rows.start], new, h[rows.stop:]]
    return torch.cat([p for p in parts if p.shape[0]], 0)


class Run:
    def __init__(self, tracer, model, table: dict, *, images: int, steps: int, calls_per_step: int,
                 order: tuple, timestep: tuple, text: tuple, text_extra: int = 0, text_more: tuple = (),
                 pooled: tuple | None = None, batch_order: tuple = ("uncond", "cond"), live: bool = True):
        self.tracer = tracer
        self.model = model  # the root envoy: its pipeline's scheduler says how many steps the run makes
        self.transformer = model.transformer
        self.table = table  # name -> ("out", path, layout, None) | ("in", path, inputs, None) | ("sub", path, i)
        self.images = images
        self.num_steps = steps
        self.live = live  # the block runs beside the live pipeline, whose scheduler it may read (not in a sandbox)
        self.calls_per_step = calls_per_step
        self.order = order
        self._timestep, self._text, self._text_extra, self._pooled = timestep, text, text_extra, pooled
        self._text_more, self.batch_order = text_more, batch_order
        self.step: Step | None = None

    def _envoy(self, path: str):
        env = self.transformer
        for part in path.split("."):
            env = env[int(part)] if part.isdigit() else getattr(env, part)
        return env

    def steps(self):
        """Exactly this run's transformer calls: the first, then as many more as the pipeline's scheduler says the
        run makes (``num_steps`` is updated then: img2img ``strength`` or custom ``sigmas`` change it). A remote run
        keeps the count it was made with: a server may run the block in a sandbox process whose pipeline is a
        weightless copy that never ran, so its scheduler says nothing about this run."""
        for _ in self.tracer.iter[0:1]:
            yield self._enter(0)
            if self.live:
                self.num_steps = self._steps_run()
        for call in self.tracer.iter[1:self.num_steps * self.calls_per_step]:
            yield self._enter(call)

    def _enter(self, call: int) -> Step:
        args, kwargs = self.transformer.inputs
        t = argument(args, kwargs, self._timestep)
        branch = "batch" if self.calls_per_step == 1 else self.order[call % self.calls_per_step]
        self.step = Step(call // self.calls_per_step, call, branch,
                         text_length(args, kwargs, self._text, self._text_more, self._text_extra), t)
        return self.step

    def _steps_run(self) -> int:
        """Denoising steps of this run, read at its first transformer call from the live pipeline's scheduler: one
        per timestep from its begin index on; the requested count where the pipeline has no such scheduler."""
        try:
            scheduler = self.model._module.pipeline.scheduler
            return len(scheduler.timesteps) - int(getattr(scheduler, "begin_index", None) or 0)
        except (AttributeError, TypeError):
            return self.num_steps

    def pooled(self):
        """The current call's pooled text embedding (rows, dim): the input that conditions every block's
        modulation on Flux and SD3."""
        args, kwargs = self.transformer.inputs
        return argument(args, kwargs, self._need_pooled())

    def set_pooled(self, value) -> None:
        kw, pos = self._need_pooled()
        args, kwargs = self.transformer.inputs
        if kw in kwargs or pos >= len(args):
            kwargs = dict(kwargs, **{kw: value})
        else:
            args = (*args[:pos], value, *args[pos + 1:])
        self.transformer.inputs = (args, kwargs)

    def _need_pooled(self) -> tuple:
        if self._pooled is None:
            raise ArgumentError("this architecture's transformer takes no pooled text embedding (its file in "
                             "dit_lens/archs declares none): its blocks see the prompt through attention only")
        return self._pooled

    def _raw(self, name):
        kind, path, spec, index = self.table[name]
        stream = name.split(".")[2]
        env = self._envoy(path)
        if kind == "out":
            return _streams.get_output(env.output, spec, self.step.T, stream)
        if kind == "in":
            args, kwargs = env.inputs
            return _streams.get_input(args, kwargs, spec, self.step.T, stream)
        return _streams.get_item(env.output, index, self.step.T, stream)

    def _rows(self, h, cfg):
        """Row slice of branch ``cfg`` in this call's value, or None when this call holds no such rows."""
        if cfg is None:
            return slice(None)
        if self.step.branch == "batch":
            return batch_rows(h.shape[0], self.images, cfg, self.batch_order)
        return slice(None) if self.step.branch == cfg else None

    def read(self, name: str, cfg: str | None = None):
        h = self._raw(name)
        rows = self._rows(h, cfg)
        return None if rows is None else h[rows]

    def branch(self, h, cfg: str | None = None) -> str:
        """The cache branch of ``h``, read with ``cfg`` at this call: ``cfg`` itself, else this call's branch on a
        sequential-CFG run, else "batch" when the call holds both branches' rows and "cond" when it holds only
        conditional rows (a run without CFG)."""
        if cfg is not None:
            return cfg
        if self.step.branch != "batch":
            return self.step.branch
        return "batch" if h.shape[0] == 2 * self.images else "cond"

    def write(self, name: str, value, cfg: str | None = None) -> None:
        kind, path, spec, index = self.table[name]
        stream = name.split(".")[2]
        if cfg is not None:
            h = self._raw(name)
            rows = self._rows(h, cfg)
            if rows is None:
                raise ArgumentError(f"write to {name} cfg={cfg!r} at a {self.step.branch} call")
            value = _splice(h, rows, value)
        env = self._envoy(path)
        if kind == "out":
            env.output = _streams.set_output(env.output, spec, self.step.T, stream, value)
        elif kind == "in":
            args, kwargs = env.inputs
            env.inputs = _streams.set_input(args, kwargs, spec, self.step.T, stream, value)
        else:
            env.output = _streams.set_item(env.output, index, value, self.step.T, stream)

    def check(self, edit, name: str, h) -> None:
        """Raise if ``edit``'s tokens or channels do not fit ``h``, this call's value of ``name`` (when the edit
        touches this call's rows at all)."""
        if self._rows(h, edit.cfg) is None:
            return
        where = f"the {self.step.branch} call of step {self.step.index}" if self.step.branch != "batch" else \
            f"step {self.step.index}"
        edit.check(name, int(h.shape[1]), int(h.shape[2]), None, where)

    def apply(self, edit, name: str, h=None):
        """Apply ``edit`` to ``name`` at the current call; returns the value after it (``h`` = current value)."""
        h = self._raw(name) if h is None else h
        if not edit.applies_at(self.step.index):
            return h
        rows = self._rows(h, edit.cfg)
        if rows is None:
            return h
        self.check(edit, name, h)
        new = _splice(h, rows, edit.apply(h[rows], self.step.index))
        self.write(name, new)
        return new
