"""What a remote recording takes from each transformer call, as plain tensors and arrays: code that runs inside a
traced block on an nnsight server, which has torch and numpy but no dit-lens (shipped by value, see
``_nnsight.TRACE_MODULES``).

    collect(run, step, names, cfg, keep, tok_index, stats_only, reducer)
        -> None (another branch's call, or a step not kept)
        |  (step index, timestep, {name: (4, rows, channels) statistics}, non-finite count, {name: value} or None)
    Collected                 a collected step on the client, in the form the store's writer takes
"""

from __future__ import annotations

__all__ = ["collect", "Collected"]


def collect(run, step, names, cfg, keep, tok_index, stats_only, reducer):
    if step.branch not in ("batch", cfg) or step.index not in keep:
        return None
    values = {}
    for name in names:
        h = run.read(name, cfg)
        if tok_index is not None and ".img." in name:
            h = h[:, tok_index.to(h.device)]
        reducer.add(name, h)  # reduced where h lives: only per-channel numbers leave the server when stats_only
        if not stats_only:
            values[name] = h.detach().to("cpu", copy=True)
    stats, count, t = reducer.finish(step.timestep).get()
    return step.index, t, stats, count, (None if stats_only else values)


class Collected:
    """A collected step's statistics, as the writer's commit message carries them (``get()``)."""

    def __init__(self, stats: dict, count: int, timestep: float):
        self._got = ({k: v for k, v in stats.items()}, int(count), float(timestep))

    def get(self) -> tuple:
        return self._got
