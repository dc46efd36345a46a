"""Which diffusers DiT classes dit-lens supports, checked on this machine's versions (``dit-lens support``).

    matrix(rows=None, check=True, progress=True) -> dict     versions, every image DiT class (adapter or the reason it
                                                             has none), the video DiTs with an adapter and, per
                                                             contract row, the checks below
    markdown(m) -> str                                       the matrix as the table in docs/support.md

Checks per contract row (``dit_lens.testing.ROWS``), each True or the error it raised:
    names      the lens loads (validated dry run) with exactly the row's families
    reads      the last image-stream block's output read by name equals a plain torch forward hook's, every call
    zero, scale, set_to, add, patch   the edit applied at step 1 shows in the value read there; step 0 untouched
    cfg        the transformer calls per step the adapter's CFG rule predicts for the row (1 batched, 2 sequential)
               are the calls a plain run of the pipeline made, and the branches the lens reads
    remote     ``Lens.generate(..., remote="local")`` (nnsight's serialisation round trip) equals the local run
    record     a recording of that name (2 steps) is complete and equals the values read live
    detect     ``detect`` runs on the store and ranks channels
"""

from __future__ import annotations

import platform
import tempfile

__all__ = ["matrix", "markdown", "CHECKS"]

CHECKS = ("names", "reads", "zero", "scale", "set_to", "add", "patch", "cfg", "remote", "record", "detect")


def _versions() -> dict:
    import diffusers
    import nnsight
    import torch

    from . import __version__

    return {"dit_lens": __version__, "diffusers": diffusers.__version__, "nnsight": nnsight.__version__,
            "torch": torch.__version__, "python": platform.python_version()}


def _block_output(lens, name):
    """A plain forward hook's view of ``name`` (a block's resid_post stream): the block module and a function of
    its output."""
    fam, i, stream, _ = name.split(".")
    layout = [f for f in lens.arch.families if f.name == fam][0].output
    module = [b["module"] for b in lens.info()["blocks"] if b["block"] == f"{fam}.{i}"][0].split(".", 1)[1]
    T = lens.shape(name.replace(".img.", ".txt."))[0] if layout == "joint" else None
    pick = {"txt,img": lambda o: o[1], "img,txt": lambda o: o[0], "img": lambda o: o,
            "joint": lambda o: o[:, T:]}[layout]
    return lens.pipeline.transformer.get_submodule(module), pick


def _row_checks(key: str, row) -> dict:
    import torch

    from .edits import add, patch, scale, set_to, zero
    from .lens import Lens
    from .recipes import detect
    from .record import record
    from .store import open_store

    out: dict = {}

    def attempt(check, fn):
        try:
            out[check] = bool(fn()) or "check failed"
        except Exception as e:  # noqa: BLE001 - a matrix reports every failure and goes on
            out[check] = f"{type(e).__name__}: {str(e)[:200]}"
        return out[check] is True

    pipe, kw = row.build(2)
    state: dict = {}

    def names():
        state["lens"] = lens = Lens(pipe, example=dict(kw, num_inference_steps=1))
        fams = {n.split(".")[0] for n in lens.names()}
        state["name"] = lens.names("*.*.img.resid_post")[-1]
        return fams == set(row.families)
    if not attempt("names", names):
        return out
    lens, name = state["lens"], state["name"]
    kw = dict(kw)
    prompts = kw.pop("prompt", None)
    n = next((n for n in range(2, 9) if lens.steps_of(n, **kw) >= 2), 2)  # img2img runs fewer steps (strength)
    run = dict(num_inference_steps=n, seed=0, **kw, **({"prompt": prompts} if prompts else {}))
    base = lens.generate(cache=name, **run)
    branches = base.cache.branches
    steps = lens.steps_of(n, **kw)

    def reads():
        module, pick = _block_output(lens, name)
        seen = []
        counter = pipe.transformer.register_forward_pre_hook(lambda m, a: state.__setitem__(
            "calls", state.get("calls", 0) + 1))
        h = module.register_forward_hook(lambda m, a, k, o: seen.append(pick(o).detach().clone()), with_kwargs=True)
        try:  # the plain pipeline, seeded as Lens.generate(seed=0) seeds its rows
            with torch.no_grad():
                pipe(num_inference_steps=n, generator=[torch.Generator().manual_seed(i) for i in range(2)], **kw,
                     **({"prompt": prompts} if prompts else {}))
        finally:
            h.remove()
            counter.remove()
        calls = [(s, b) for s in range(steps) for b in branches]
        return len(seen) == len(calls) and all(torch.equal(base.cache[name, s, b], v) for (s, b), v in
                                               zip(calls, seen))
    attempt("reads", reads)
    b0 = branches[0]
    C = base.cache[name, 0, b0].shape[-1]
    source = {1: base.cache[name, 0, b0]}
    edits = {"zero": (zero(name, steps=[1], channels=[0]), lambda v, b: torch.all(v[..., 0] == 0)),
             "scale": (scale(name, 2.0, steps=[1]), lambda v, b: torch.allclose(v, 2 * b)),
             "set_to": (set_to(name, 3.0, steps=[1], channels=[1]), lambda v, b: torch.all(v[..., 1] == 3)),
             "add": (add(name, torch.ones(C), steps=[1]), lambda v, b: torch.allclose(v, b + 1)),
             "patch": (patch(name, source, steps=[1], cfg=b0 if len(branches) > 1 else None),
                       lambda v, b: torch.equal(v, source[1]))}
    edited = {"patch": [b0]}  # the branches each edit applies to (default every branch)
    for kind, (edit, holds) in edits.items():
        def check(edit=edit, holds=holds, on=edited.get(kind, branches)):
            g = lens.generate(cache=name, edits=[edit], **run)
            first = all(torch.equal(g.cache[name, 0, b], base.cache[name, 0, b]) for b in branches)
            return first and all(holds(g.cache[name, 1, b], base.cache[name, 1, b]) for b in on)
        attempt(kind, check)
    attempt("cfg", lambda: state.get("calls") == steps * lens.calls_per_step(**kw) == steps * len(branches))

    def remote():
        g = lens.generate(cache=name, remote="local", **run)
        return all(torch.equal(g.cache[name, s, b], base.cache[name, s, b]) for s in range(steps) for b in branches)
    attempt("remote", remote)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"{tmp}/s.zarr"

        def recorded():
            record(lens, url, prompts or ["p0", "p1"], names=name, num_inference_steps=n, batch_size=2,
                   progress=False, **kw)
            ds = open_store(url)
            if not bool(ds.complete.all()):
                return False
            same = lens.generate(cache=name, cache_cfg="cond", num_inference_steps=n, **kw,
                                 generator=[torch.Generator().manual_seed(0) for _ in range(2)],
                                 **({"prompt": prompts} if prompts else {}))  # record seeds each sample by its seed
            live = same.cache[name, steps - 1]  # the cond rows, as the store keeps them
            stored = torch.as_tensor(ds.dit.sel(name).isel(step=-1).values)
            return torch.equal(stored, live.float())
        if attempt("record", recorded):
            attempt("detect", lambda: len(detect(url, k=2).per_name[name]["top"]) == 2)
    return out


def matrix(rows=None, check: bool = True, progress: bool = True) -> dict:
    """The support matrix as a dict (see the module docstring); ``rows``: contract row ids to check (default all),
    ``check=False``: the registry only."""
    from .archs import ARCHS, IMAGE_DITS, UNSUPPORTED
    from .errors import ArgumentError
    from .names import SITES
    from .testing import ROWS

    keys = sorted(ROWS) if rows is None else list(rows)
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        raise ArgumentError(f"no contract rows {unknown}; rows: {', '.join(sorted(ROWS))}")
    classes = {}
    for cls in sorted(set(IMAGE_DITS) | set(ARCHS)):
        arch = ARCHS.get(cls)
        classes[cls] = {"status": "supported" if arch else "no adapter", "reason": UNSUPPORTED.get(cls),
                        "kind": "video" if arch and arch.grid else "image",
                        "families": [f.name for f in arch.families] if arch else [],
                        "sites": {f.name: [s for s in SITES if s in f.sites or s.startswith("resid")]
                                  for f in arch.families} if arch else {},
                        "cfg": (arch.sequential_cfg.describe() if arch and arch.sequential_cfg
                                else "batched" if arch else None),
                        "rows": {}}
    if check:
        from tqdm.auto import tqdm

        for key in tqdm(keys, desc="support", unit="row", disable=not progress):
            row = ROWS[key]
            cls = row.transformer or type(row.build(1)[0].transformer).__name__
            classes.setdefault(cls, {"status": "supported", "reason": None, "rows": {}})
            classes[cls]["rows"][key] = _row_checks(key, row)
    return {"versions": _versions(), "checks": list(CHECKS), "classes": classes}


def markdown(m: dict) -> str:
    """The matrix as markdown: versions, then one line per (class, row) with a mark per check."""
    v = m["versions"]
    image = [c for c in m["classes"].values() if c.get("kind", "image") == "image"]
    video = [k for k, c in m["classes"].items() if c.get("kind") == "video"]
    lines = ["# Supported models", "",
             "Written by `dit-lens support --json docs/support.json --markdown docs/support.md`, which runs the checks "
             "below on a tiny random-weight pipeline of every contract row (`dit_lens.testing.ROWS`) with the "
             "installed versions; run it to see your own. Checks: names resolve (validated load), reads equal a plain "
             "torch forward hook, each edit kind applies from its step on, the CFG style (calls per step) is the "
             "adapter's, `remote=\"local\"` equals local, a recording equals the live values, detect runs on it.",
             "", f"{sum(c['status'] == 'supported' for c in image)} of {len(image)} image DiT classes have an adapter; "
             "the others are listed below with what stands in the way. Video DiTs with an adapter (tokens on a "
             f"(frames, rows, cols) grid): {', '.join(f'`{c}`' for c in video) or 'none'}.", "",
             f"dit-lens {v['dit_lens']}, diffusers {v['diffusers']}, nnsight {v['nnsight']}, torch {v['torch']}, "
             f"Python {v['python']}.", "",
             "| transformer class | row | " + " | ".join(m["checks"]) + " |",
             "|---|---|" + "---|" * len(m["checks"])]
    for cls, c in m["classes"].items():
        if c["status"] != "supported":
            continue
        for key, checks in (c["rows"] or {"(not checked)": {}}).items():
            marks = ["yes" if checks.get(k) is True else "-" if k not in checks else "**no**" for k in m["checks"]]
            lines.append(f"| `{cls}` | {key} | " + " | ".join(marks) + " |")
    lines += ["", "Sites per family (a block of the family has each site for each stream it carries; "
              "docs/architectures.md says what each is):", "",
              "| transformer class | family | sites |", "|---|---|---|"]
    lines += [f"| `{cls}` | {fam} | {', '.join(sites)} |" for cls, c in m["classes"].items()
              for fam, sites in (c.get("sites") or {}).items()]
    lines += ["", "No adapter yet:", ""]
    lines += [f"- `{cls}`: {c['reason']}" for cls, c in m["classes"].items() if c["status"] != "supported"]
    failures = [(cls, key, k, r) for cls, c in m["classes"].items() for key, checks in c["rows"].items()
                for k, r in checks.items() if r is not True]
    if failures:
        lines += ["", "Failures:", ""] + [f"- `{cls}` {key} {k}: {r}" for cls, key, k, r in failures]
    return "\n".join(lines) + "\n"
