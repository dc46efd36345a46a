"""What a recording takes from each transformer call: code that runs inside the traced block, here or on an nnsight
server, which has torch and numpy but no dit-lens (shipped by value, see ``_nnsight.TRACE_MODULES``).

    collect(run, step, names, cfg, keep, tok_index, stats_only, reducer, emit=None, check=None)
        -> None for another branch's call (sequential CFG), else (step index, timestep, statistics, values):
           statistics None for a step not kept. With ``emit`` (here): each value is handed to ``emit(name, value)``
           as it is read, where it lives (the caller takes it to the host), values is None and the statistics are
           the reducer's ``StepStats`` (the writer thread waits for their copy). Without (on a server): values
           {name: CPU tensor} and the statistics already on the host, ({name: (4, rows, channels)}, non-finite
           count, timestep) — plain objects, which the server's result pickling can send without dit-lens
    Hooked(names, cfg, keep, steps, tok_index, stats_only, reducer, emit, check)
        the same for a run by plain torch hooks (``dit_lens._hooks.HookRun``, the recorder's local path): ``.value``
        takes each value as its block returns it (its ``on_value``), ``.end(run)`` at the call's end returns what
        ``collect`` returns; a call that did not produce every name once raises, and calls past ``steps`` are
        counted by the run, not taken
"""

from __future__ import annotations

from .errors import RunError

__all__ = ["collect", "Hooked"]


def collect(run, step, names, cfg, keep, tok_index, stats_only, reducer, emit=None, check=None):
    if step.branch not in ("batch", cfg):
        return None
    t = float(step.timestep.flatten()[0])
    if step.index not in keep:
        return step.index, t, None, None
    values = {}
    for name in names:
        _take(name, run.read(name, cfg), tok_index, stats_only, reducer, emit, check, values)
    stats = reducer.finish(step.timestep)
    if emit is None:
        return step.index, t, stats.get(), (values if values else None)
    return step.index, t, stats, None


def _take(name, h, tok_index, stats_only, reducer, emit, check, values) -> None:
    """One value of a kept call: checked, its image tokens selected, reduced, and handed on (``emit``) or kept."""
    if check is not None:
        check(name, h)
    if tok_index is not None and ".img." in name:
        h = h[:, tok_index.to(h.device)]
    reducer.add(name, h)  # reduced where h lives: only per-channel numbers leave the device (or the server)
    if not stats_only:
        if emit is not None:
            emit(name, h)  # here: to the host and the writer at once, so a step's values are never all held
        else:
            values[name] = h.detach().to("cpu", copy=True)


class Hooked:
    def __init__(self, names, cfg, keep, steps, tok_index, stats_only, reducer, emit, check):
        self.names, self.cfg, self.keep, self.steps = list(names), cfg, keep, steps
        self._args = (tok_index, stats_only, reducer, emit, check, None)
        self._reducer = reducer
        self._got: list = []
        self.step = None  # the step index of the value being taken (for ``emit`` and ``check``)

    def _wanted(self, step) -> bool:
        return step.branch in ("batch", self.cfg) and step.index < self.steps

    def value(self, run, name, h) -> None:
        if name not in self.names or not self._wanted(run.step) or run.step.index not in self.keep:
            return
        self._got.append(name)
        self.step = run.step.index
        _take(name, run.rows(h, self.cfg), *self._args)

    def end(self, run):
        step, got, self._got = run.step, self._got, []
        if not self._wanted(step):
            return None
        t = float(step.timestep.flatten()[0])
        if step.index not in self.keep:
            return step.index, t, None, None
        if sorted(got) != sorted(self.names):
            missing = sorted(set(self.names) - set(got))
            twice = sorted({n for n in got if got.count(n) > 1})
            raise RunError(f"call {step.call} (step {step.index}) produced "
                           + (f"no value of {missing}" if missing else f"{twice} more than once")
                           + ": its blocks did not run as the lens's dry run did; nothing of this batch is flagged "
                             "complete")
        return step.index, t, self._reducer.finish(step.timestep), None
