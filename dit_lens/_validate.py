"""Load-time validation: one dry run of the pipeline with plain torch hooks checks every block against its adapter.

    probe(pipeline, arch, example) -> Probe     runs the pipeline once, records each block's inputs and outputs,
                                                checks them against the adapter (``AdapterMismatch``) and returns
                                                the blocks in execution order with every name's shape
    text_extra(transformer, arch)               tokens a transformer prepends to the text inside its blocks

A diffusers release that changes a block's signature fails here, naming the adapter file and the block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import _streams
from ._run import argument, text_length
from .archs import Arch
from .errors import AdapterMismatch
from .names import SITES

__all__ = ["Block", "Probe", "probe", "text_extra"]

@dataclass
class Block:
    family: str
    index: int
    path: str  # e.g. "transformer_blocks.3"
    layout: str
    inputs: dict
    sites: dict  # site -> stream -> (submodule, index)
    order: int = -1  # position of the block's first call in a transformer call


@dataclass
class Probe:
    blocks: list  # Block, in execution order
    shapes: dict = field(default_factory=dict)  # name -> (tokens, channels)
    img_tokens: int = 0
    grid: tuple | None = None  # video: (frames, rows, cols) of the image tokens, measured at the first call
    txt_tokens: int = 0


def text_extra(transformer, arch: Arch) -> int:
    """Tokens the transformer prepends to the text stream inside its blocks (e.g. AuraFlow's registers)."""
    return 0 if arch.text_extra is None else int(getattr(transformer, arch.text_extra).shape[1])


def _describe(v) -> str:
    if v is None:
        return "None"
    if isinstance(v, torch.Tensor):
        return f"Tensor{tuple(v.shape)}"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_describe(x) for x in v) + ")"
    return type(v).__name__


def _blocks(transformer, arch: Arch) -> list[Block]:
    blocks = []
    for fam in arch.families:
        mods = getattr(transformer, fam.path, None)
        if not isinstance(mods, torch.nn.ModuleList) or len(mods) == 0:
            if mods is not None and len(mods) == 0:
                continue  # a config with zero blocks of a family (e.g. num_single_layers=0)
            raise AdapterMismatch(f"{arch.source}: {type(transformer).__name__} has no ModuleList "
                                  f"{fam.path!r} (family {fam.name})")
        for i in range(len(mods)):
            blocks.append(Block(fam.name, i, f"{fam.path}.{i}", fam.output, fam.inputs, fam.sites))
    return blocks


def probe(pipeline, arch: Arch, example: dict) -> Probe:
    transformer = pipeline.transformer
    if example.get("num_inference_steps", arch.min_steps) < arch.min_steps:
        example = dict(example, num_inference_steps=arch.min_steps)
    blocks = _blocks(transformer, arch)
    seen: dict = {}  # (path, what) -> value of the first transformer call
    calls = {"n": 0, "T": None, "events": 0}
    entered: dict = {}  # block path -> event index when it was entered
    handles = []

    def pre_transformer(module, args, kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            if arch.grid is not None:
                try:
                    calls["grid"] = arch.grid.measure(args, kwargs, transformer.config)
                except (KeyError, IndexError, AttributeError, TypeError, ValueError) as e:
                    calls["grid"] = f"{type(e).__name__}: {e}"
            calls["T"] = text_length(args, kwargs, arch.text, arch.text_more, text_extra(transformer, arch))
            if arch.pooled is not None:
                pooled = argument(args, kwargs, arch.pooled)
                calls["pooled"] = tuple(pooled.shape) if isinstance(pooled, torch.Tensor) else type(pooled).__name__

    def hook(key):
        def fn(module, args, kwargs, output):
            if calls["n"] == 1 and key not in seen:
                calls["events"] += 1
                seen[key] = (args, kwargs, output, calls["events"])
        return fn

    def enter(path):
        def fn(module, args, kwargs):
            if calls["n"] == 1 and path not in entered:
                calls["events"] += 1
                entered[path] = calls["events"]
        return fn

    handles.append(transformer.register_forward_pre_hook(pre_transformer, with_kwargs=True))
    for b in blocks:
        mod = transformer.get_submodule(b.path)
        handles.append(mod.register_forward_hook(hook((b.path, None)), with_kwargs=True))
        handles.append(mod.register_forward_pre_hook(enter(b.path), with_kwargs=True))
        for site, streams in b.sites.items():
            for sub, _ in streams.values():
                try:
                    handles.append(mod.get_submodule(sub).register_forward_hook(hook((b.path, sub)),
                                                                                with_kwargs=True))
                except AttributeError:
                    pass  # absent in this block (e.g. SD3's last block has no ff_context): no such name
    try:
        with torch.no_grad():
            pipeline(**example)
    finally:
        for h in handles:
            h.remove()
    if calls["n"] == 0:
        raise AdapterMismatch(f"{arch.source}: the dry run never called the transformer")
    if arch.pooled is not None and not (isinstance(calls["pooled"], tuple) and len(calls["pooled"]) == 2):
        raise AdapterMismatch(f"{arch.source}: declares a pooled text embedding {arch.pooled}, but the transformer "
                              f"got {calls['pooled']} there, not a (rows, dim) tensor")
    result = _check(blocks, seen, entered, calls["T"], arch)
    if arch.grid is not None:
        grid = calls.get("grid")
        if not isinstance(grid, tuple) or grid[0] * grid[1] * grid[2] != result.img_tokens:
            raise AdapterMismatch(f"{arch.source}: its token grid rule {arch.grid} gives {grid} at the dry run, "
                                  f"which is not the {result.img_tokens} image tokens the blocks carry")
        result.grid = grid
    return result


def _check(blocks, seen, entered, T, arch: Arch) -> Probe:
    result = Probe(blocks=[])
    fired: dict = {}  # name -> event index at which its value exists (execution order)
    img_tokens, width = None, None
    for b in blocks:
        where = f"{arch.source}: block {b.path} ({b.family}.{b.index})"
        if (b.path, None) not in seen:
            raise AdapterMismatch(f"{where} was not called during the dry run")
        args, kwargs, out, order = seen[(b.path, None)]
        b.order = entered[b.path]
        if b.layout == "joint" and T is None:
            raise AdapterMismatch(f"{where}: a joint block needs the text length, but the transformer's "
                                  f"{arch.text[0]!r} argument was not a tensor")
        try:
            ok = _layout_ok(out, b.layout, T)
        except Exception:  # noqa: BLE001 - any failure to unpack is a mismatch
            ok = False
        if not ok:
            raise AdapterMismatch(f"{where} returned {_describe(out)}; the adapter declares layout {b.layout!r}. "
                                  f"diffusers may have changed this block's signature.")
        for stream in ("img", "txt"):
            post = _streams.get_output(out, b.layout, T, stream)
            if post is None:
                if stream == "txt" and b.layout in ("txt,img", "img,txt") and not _txt_none_ok(arch, b):
                    raise AdapterMismatch(f"{where} returned None for the text stream")
                continue
            try:
                pre = _streams.get_input(args, kwargs, b.inputs, T, stream)
            except KeyError as e:
                raise AdapterMismatch(f"{where}: {e}; the block got positional {_describe(tuple(args))} and "
                                      f"keywords {sorted(kwargs)}") from None
            if pre is not None and tuple(pre.shape) != tuple(post.shape):
                raise AdapterMismatch(f"{where}: {stream} stream enters as {tuple(pre.shape)} but leaves as "
                                      f"{tuple(post.shape)}")
            if stream == "img":
                if img_tokens is None:
                    img_tokens, width = post.shape[1], post.shape[2]
                elif (post.shape[1], post.shape[2]) != (img_tokens, width):
                    raise AdapterMismatch(f"{where}: image stream {tuple(post.shape)} differs from earlier blocks' "
                                          f"(rows, {img_tokens}, {width})")
            shape = (int(post.shape[1]), int(post.shape[2]))
            if pre is not None:
                result.shapes[f"{b.family}.{b.index}.{stream}.resid_pre"] = shape
                fired[f"{b.family}.{b.index}.{stream}.resid_pre"] = entered[b.path]
            for site, streams in b.sites.items():
                if stream in streams and (b.path, streams[stream][0]) in seen:
                    sub_out = seen[(b.path, streams[stream][0])][2]
                    val = None
                    try:
                        val = _streams.get_item(sub_out, streams[stream][1], T, stream)
                    except (IndexError, TypeError):
                        pass
                    if isinstance(val, torch.Tensor) and tuple(val.shape) == tuple(post.shape):
                        result.shapes[f"{b.family}.{b.index}.{stream}.{site}"] = shape
                        fired[f"{b.family}.{b.index}.{stream}.{site}"] = seen[(b.path, streams[stream][0])][3]
                    elif val is not None:
                        raise AdapterMismatch(f"{where}: sub-site {site} ({streams[stream][0]}) gives "
                                              f"{_describe(sub_out)}, expected {tuple(post.shape)} for {stream}")
            result.shapes[f"{b.family}.{b.index}.{stream}.resid_post"] = shape
            fired[f"{b.family}.{b.index}.{stream}.resid_post"] = order
            if stream == "txt":
                result.txt_tokens = shape[0]
        result.blocks.append(b)
    result.blocks.sort(key=lambda b: b.order)
    result.img_tokens = int(img_tokens or 0)
    site_rank = {s: k for k, s in enumerate(SITES)}

    def key(name):  # execution order; streams read from one value keep img before txt
        return fired[name], site_rank[name.split(".")[3]], name.split(".")[2]

    result.shapes = dict(sorted(result.shapes.items(), key=lambda kv: key(kv[0])))
    return result


def _txt_none_ok(arch: Arch, b: Block) -> bool:
    return any(f.name == b.family and f.txt_may_be_none for f in arch.families)


def _layout_ok(out, layout: str, T) -> bool:
    def t3(v):
        return isinstance(v, torch.Tensor) and v.dim() == 3

    if layout == "img":
        return t3(out)
    if layout == "joint":
        return t3(out) and out.shape[1] > T
    return isinstance(out, (tuple, list)) and len(out) == 2 and all(v is None or t3(v) for v in out) \
        and t3(_streams.get_output(out, layout, T, "img"))
