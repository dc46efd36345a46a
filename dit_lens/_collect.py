"""What a recording takes from each transformer call: code that runs inside the traced block, here or on an nnsight
server, which has torch and numpy but no dit-lens (shipped by value, see ``_nnsight.TRACE_MODULES``).

    collect(run, step, names, cfg, keep, tok_index, stats_only, reducer, emit=None, check=None)
        -> None for another branch's call (sequential CFG), else (step index, timestep, statistics, values):
           statistics None for a step not kept. With ``emit`` (here): each value is handed to ``emit(name, value)``
           as it is read, where it lives (the caller takes it to the host), values is None and the statistics are
           the reducer's ``StepStats`` (the writer thread waits for their copy). Without (on a server): values
           {name: CPU tensor} and the statistics already on the host, ({name: (4, rows, channels)}, non-finite
           count, timestep) — plain objects, which the server's result pickling can send without dit-lens
"""

from __future__ import annotations

__all__ = ["collect"]


def collect(run, step, names, cfg, keep, tok_index, stats_only, reducer, emit=None, check=None):
    if step.branch not in ("batch", cfg):
        return None
    t = float(step.timestep.flatten()[0])
    if step.index not in keep:
        return step.index, t, None, None
    values = {}
    for name in names:
        h = run.read(name, cfg)
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
    stats = reducer.finish(step.timestep)
    if emit is None:
        return step.index, t, stats.get(), (values if values else None)
    return step.index, t, stats, None
