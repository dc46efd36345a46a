"""The ``dit-lens`` command: one subcommand per public function.

    dit-lens names [PATTERN ...] [--model M] [--json]    canonical names of a model (with shapes and depth)
    dit-lens demo --out DIR [--model tiny] [--quick]     generate + score a grid, then record -> detect -> disrupt
                                                         -> cluster -> transport; DIR/report.md
    dit-lens record STORE --prompts P ... [--names GLOB] [--steps N] [--stats-only] [--resume]
                                                         record activations into an xarray/zarr store
    dit-lens info STORE [--json] [--verify]              summarise a store (and check every chunk decodes)
    dit-lens run RECIPE.toml --out DIR                   run a recipe file: DIR/report.json + figures
    dit-lens view STORE_OR_FOLDER [--port N]             browse a store or a report in the browser (127.0.0.1)

``--model`` is a registered model spec ("tiny", the embedded model, the default), a folder in diffusers'
save_pretrained layout, or a hub id. ``demo`` runs the demo of a registered model spec.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .errors import ArgumentError, DitLensError

__all__ = ["main"]


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny",
                   help='a registered model spec ("tiny": the embedded model), a save_pretrained folder, or a hub id')


def _names(a) -> int:
    from .lens import Lens

    print(f"loading {a.model} ...", file=sys.stderr, flush=True)
    lens = Lens(a.model)
    names = lens.names(a.pattern or None)
    if a.json:
        info = lens.info()
        info["names"] = {n: dict(info["names"][n], depth=lens.depth(n)) for n in names}
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        for n in names:
            t, c = lens.shape(n)
            print(f"{n:<32} depth {lens.depth(n):>3}  tokens {t:>5}  channels {c:>5}")
    return 0


def _demo(a) -> int:
    from .models import get

    spec = get(a.model)
    if spec.demo is None:
        raise ArgumentError(f"model spec {a.model!r} has no demo")
    spec.demo(a.out, model=a.model, steps=a.steps, seed=a.seed, full=not a.quick)
    return 0


def _options(text):
    """--storage-options: a JSON object, or a one-line error."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ArgumentError(f"--storage-options is not JSON ({e}): e.g. '{{\"endpoint_url\": \"http://...\"}}'") \
            from None
    if not isinstance(value, dict):
        raise ArgumentError("--storage-options must be a JSON object of fsspec options")
    return value


def _complete_samples(url, opts) -> int | None:
    """How many samples of the store at ``url`` are complete, or None where there is no store yet."""
    import numpy as np

    from .errors import StoreTimeoutError
    from .store import open_group

    try:
        group = open_group(url, opts, mode="r")
    except StoreTimeoutError:
        raise
    except DitLensError:
        return None
    return int(np.asarray(group["complete"][:]).all(1).sum())


def _remote(value):
    """--remote: off, "local" (nnsight's round trip here) or on (the server nnsight is configured for)."""
    return {None: False, "local": "local", "on": True}[value]


def _record(a) -> int:
    import math

    from .lens import Lens
    from ._checks import seconds, whole
    from .record import _bounded, record

    prompts = list(a.prompts)
    if a.prompts_file:
        with open(a.prompts_file) as f:
            prompts += [line.strip() for line in f if line.strip()]
    if not prompts:
        raise ArgumentError("no prompts: give --prompts or --prompts-file")
    if a.guidance_scale is not None and not math.isfinite(a.guidance_scale):
        raise ArgumentError(f"--guidance-scale {a.guidance_scale}: expected a finite number")
    opts = _options(a.storage_options)
    seconds("--storage-timeout", a.storage_timeout)
    whole("--write-threads", a.write_threads)
    with _bounded(a.storage_timeout):
        before = _complete_samples(a.store, opts)  # checked before the model loads
    if before is not None and not a.resume:
        raise ArgumentError(f"{a.store} already exists: pass --resume to complete it (or join its writers), or "
                            f"choose a new path")
    total = len(prompts) * len(a.seeds)
    if a.resume and before == total:
        print(f"nothing to do: all {total} samples of {a.store} are complete")
        return 0
    print(f"loading {a.model} ...", file=sys.stderr, flush=True)
    lens = Lens(a.model, device=a.device)
    kwargs = {} if a.guidance_scale is None else {"guidance_scale": a.guidance_scale}
    record(lens, a.store, prompts, seeds=a.seeds, names=a.names, num_inference_steps=a.num_inference_steps,
           steps=a.record_steps, cfg=a.cfg, stats_only=a.stats_only, batch_size=a.batch_size,
           samples=a.samples, resume=a.resume, takeover=a.takeover, storage_options=opts,
           storage_timeout=a.storage_timeout, remote=_remote(a.remote), compression=a.compression,
           write_threads=a.write_threads, **kwargs)
    with _bounded(a.storage_timeout):
        after = _complete_samples(a.store, opts) or 0
    print(f"recorded {after - (before or 0)} samples ({after} of {total} complete) -> {a.store}")
    return 0


def _info(a) -> int:
    from .store import open_store

    opts = _options(a.storage_options) or {}
    ds = open_store(a.store, complete_only=False, **opts)
    complete = ds["complete"].values
    info = {
        "store": a.store, "mode": ds.attrs["mode"], "model_class": ds.attrs.get("model_class"),
        "pipeline_class": ds.attrs.get("pipeline_class"), "config_hash": ds.attrs.get("config_hash"),
        "dit_lens_version": ds.attrs.get("dit_lens_version"), "schema": ds.attrs.get("dit_lens_schema"),
        "encoding": ds.attrs.get("encoding"), "cfg": ds.attrs.get("cfg"),
        "compression": json.loads(ds.attrs["layout"]).get("compression", "lz4") if ds.attrs["mode"] == "full" else None,
        "samples": int(ds.sizes["sample"]), "steps": [int(s) for s in ds["step"].values],
        "layers": [str(x) for x in ds["layer"].values], "names": ds.dit.names,
        "complete_units": int(complete.sum()), "total_units": int(complete.size),
        "variables": {v: list(ds[v].dims) for v in ds.data_vars},
    }
    if a.verify:
        from .store import verify

        info["corrupt_chunks"] = verify(a.store, opts or None)
    if a.json:
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        for k in ("store", "mode", "model_class", "pipeline_class", "config_hash", "encoding", "compression", "cfg",
                  "samples"):
            print(f"{k:<16} {info[k]}")
        print(f"{'steps':<16} {info['steps']}")
        print(f"{'complete':<16} {info['complete_units']}/{info['total_units']} (sample, step) units")
        print(f"{'names':<16} {len(info['names'])}: {', '.join(info['names'][:6])}"
              f"{' ...' if len(info['names']) > 6 else ''}")
        if a.verify:
            bad = info["corrupt_chunks"]
            print(f"{'verify':<16} " + ("every chunk of the complete units is present, matches its checksum and "
                                        "decodes" if not bad else f"{len(bad)} bad chunks:"))
            for b in bad[:20]:
                where = f"sample {b['sample']}" + (f", step {b['step']}" if b["step"] is not None else "")
                print(f"  {b['chunk']} ({where}): {b['error']}")
    return 1 if a.verify and info["corrupt_chunks"] else 0


def _run(a) -> int:
    from .recipes import run_file

    report = run_file(a.recipe, a.out)
    for r in report.get("runs", []):
        print(f"  {r['parameters']}: {r['summary']} ({r['seconds']} s)")
    if "summary" in report:
        print(f"  {report['summary']}")
    print(f"{report['recipe']} done in {report['seconds']} s -> {a.out}/report.json "
          f"({len(report['figures'])} figures)")
    return 0


def _support(a) -> int:
    import json

    from .support import markdown, matrix

    m = matrix(rows=a.rows, check=not a.no_check, progress=sys.stderr.isatty())
    if a.json:
        with open(a.json, "w") as f:
            json.dump(m, f, indent=1, sort_keys=True)
    text = markdown(m)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    print(text, end="")
    failed = [k for c in m["classes"].values() for r in c["rows"].values() for k, v in r.items() if v is not True]
    return 1 if failed else 0


def _view(a) -> int:
    from .view import serve

    server = serve(a.path, a.port, json.loads(a.storage_options) if a.storage_options else None)
    print(f"dit-lens view: {a.path} at {server.url} (127.0.0.1 only; Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()
    return 0


def main(argv=None) -> int:
    from . import __version__

    fmt = dict(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p = argparse.ArgumentParser(prog="dit-lens", description="Name-addressed interpretability for Diffusion "
                                "Transformers (nnsight + diffusers).", **fmt)
    p.add_argument("--version", action="version", version=f"dit-lens {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    n = sub.add_parser("names", help="list a model's canonical names", **fmt)
    n.add_argument("pattern", nargs="*", help="names or globs, e.g. 'double.*.img.resid_post' (none: all)")
    n.add_argument("--json", action="store_true", help="machine-readable output with shapes and depth")
    _model_arg(n)
    n.set_defaults(fn=_names)
    d = sub.add_parser("demo", help="the embedded model end to end: generate + score, then record -> detect -> "
                       "disrupt -> cluster -> transport, and a report page", **fmt)
    d.add_argument("--out", default="out/demo", help="output folder")
    d.add_argument("--steps", type=int, default=20, help="denoising steps")
    d.add_argument("--seed", type=int, default=0, help="seed of the first image (image i gets seed + i)")
    d.add_argument("--quick", action="store_true", help="only the generation grid and its scores")
    d.add_argument("--model", default="tiny", help="a registered model spec with a demo")
    d.set_defaults(fn=_demo)
    r = sub.add_parser("record", help="record activations of prompts x seeds into a store (path or URL)", **fmt)
    r.add_argument("store", help="path or fsspec URL (s3://bucket/x.zarr)")
    r.add_argument("--prompts", nargs="*", default=[], help="prompts (and/or --prompts-file)")
    r.add_argument("--prompts-file", help="one prompt per line")
    r.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds; samples are prompts x seeds")
    r.add_argument("--names", nargs="+", default=["*.*.img.resid_post"], help="names or globs")
    r.add_argument("--num-inference-steps", type=int, default=20, help="denoising steps of each run")
    r.add_argument("--record-steps", nargs="+", type=int, default=None, help="steps to keep (None: all)")
    r.add_argument("--cfg", choices=["cond", "uncond"], default="cond", help="the CFG branch recorded")
    r.add_argument("--guidance-scale", type=float, default=None, help="the pipeline's guidance scale (None: "
                   "its own)")
    r.add_argument("--stats-only", action="store_true", help="per-channel statistics only (no tokens)")
    r.add_argument("--device", default=None,
                   help="run the model there, e.g. cuda (statistics are then reduced on it; None: as loaded)")
    r.add_argument("--batch-size", type=int, default=4, help="samples per pipeline call")
    r.add_argument("--samples", nargs="+", type=int, default=None, help="record only these sample indices")
    r.add_argument("--resume", action="store_true", help="complete an interrupted store (or join its writers)")
    r.add_argument("--takeover", action="store_true", help="take over claims of a writer you know died (claims of "
                   "a writer that provably ended are taken over without it)")
    r.add_argument("--storage-timeout", type=float, default=120.0, help="seconds any storage call may take before "
                   "the recording stops with an error")
    r.add_argument("--storage-options", help="JSON of fsspec storage options (e.g. S3 endpoint and keys)")
    r.add_argument("--compression", choices=["lz4", "none"], default=None,
                   help="the activation values' lossless codec: 'lz4' (Blosc LZ4 + bit-shuffle) or 'none' (stored "
                        "uncompressed: more bytes, less CPU beside the model); default lz4 for a new store, the "
                        "store's own with --resume")
    r.add_argument("--write-threads", type=int, default=1,
                   help="threads that encode chunks and write a local disk's files at once (default 1; more pays "
                        "only where cores are idle, e.g. a GPU model's full recording)")
    r.add_argument("--remote", choices=["on", "local"], default=None,
                   help="run each batch as an nnsight request: 'on' (the server nnsight is configured for) or "
                        "'local' (the serialization round trip here); statistics are reduced on the server")
    _model_arg(r)
    r.set_defaults(fn=_record)
    i = sub.add_parser("info", help="summarise a store", **fmt)
    i.add_argument("store", help="path or fsspec URL")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--verify", action="store_true", help="decode every chunk of every complete unit")
    i.add_argument("--storage-options", help="JSON of fsspec storage options")
    i.set_defaults(fn=_info)
    rr = sub.add_parser("run", help="run a recipe file (recipes/*.toml)", **fmt)
    rr.add_argument("recipe", help="a recipe file")
    rr.add_argument("--out", required=True, help="output folder: report.json and figures")
    rr.set_defaults(fn=_run)
    sp = sub.add_parser("support", help="which diffusers DiT classes dit-lens supports, checked on this machine's "
                        "diffusers / nnsight / torch (a tiny random-weight pipeline per contract row)", **fmt)
    sp.add_argument("--json", help="write the matrix as JSON to this file")
    sp.add_argument("--markdown", help="write the table (as in docs/support.md) to this file")
    sp.add_argument("--rows", nargs="+", default=None, help="contract rows to check (None: all)")
    sp.add_argument("--no-check", action="store_true", help="the registry only: run nothing")
    sp.set_defaults(fn=_support)
    v = sub.add_parser("view", help="browse a store or a recipe / demo output folder in the browser "
                       "(127.0.0.1, offline)", **fmt)
    v.add_argument("path", help="a store (path or fsspec URL) or a folder with report.json / scores.json")
    v.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free one)")
    v.add_argument("--storage-options", help="JSON of fsspec storage options (an s3:// store)")
    v.set_defaults(fn=_view)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except (DitLensError, KeyError, ValueError, TypeError, IndexError, FileNotFoundError, RuntimeError) as e:
        print(f"dit-lens {a.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
