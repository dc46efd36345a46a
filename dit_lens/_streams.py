"""Pure functions between a block's raw values and its named streams (used in traces and in validation).

    get_output(value, layout, T, stream)          one stream of a block's return value
    set_output(value, layout, T, stream, new)     the return value with one stream replaced
    get_input(args, kwargs, inputs, T, stream)    one stream of a block's arguments
    set_input(args, kwargs, inputs, T, stream, new) -> (args, kwargs)
    get_item(value, index, T, stream) / set_item(value, index, T, stream, new)   a sub-module's output stream

``T`` is the text length, used only to split a "joint" [txt; img] tensor. A sub-module's ``index`` is None (its
output is the stream), an integer (an element of its tuple output) or "joint" (its output is [txt; img]).
"""

from __future__ import annotations

__all__ = ["get_output", "set_output", "get_input", "set_input", "get_item", "set_item"]

_POS = {"txt,img": {"txt": 0, "img": 1}, "img,txt": {"img": 0, "txt": 1}}


def get_output(value, layout: str, T: int, stream: str):
    if layout == "img":
        return value if stream == "img" else None
    if layout == "joint":
        return value[:, :T] if stream == "txt" else value[:, T:]
    return value[_POS[layout][stream]]


def set_output(value, layout: str, T: int, stream: str, new):
    import torch

    if layout == "img":
        return new
    if layout == "joint":
        return torch.cat([new, value[:, T:]], 1) if stream == "txt" else torch.cat([value[:, :T], new], 1)
    out = list(value)
    out[_POS[layout][stream]] = new
    return tuple(out)


def _locate(args, kwargs, inputs: dict, key: str):
    keyword, position = inputs[key]
    if keyword in kwargs:
        return "kw", keyword
    if position < len(args):
        return "pos", position
    raise KeyError(f"argument {keyword!r} (position {position}) not passed to the block")


def get_input(args, kwargs, inputs: dict, T: int, stream: str):
    if "joint" in inputs:
        where, key = _locate(args, kwargs, inputs, "joint")
        joint = kwargs[key] if where == "kw" else args[key]
        return get_output(joint, "joint", T, stream)
    if stream not in inputs:
        return None
    where, key = _locate(args, kwargs, inputs, stream)
    return kwargs[key] if where == "kw" else args[key]


def set_input(args, kwargs, inputs: dict, T: int, stream: str, new):
    args, kwargs = list(args), dict(kwargs)
    key_name = "joint" if "joint" in inputs else stream
    where, key = _locate(args, kwargs, inputs, key_name)
    if key_name == "joint":
        old = kwargs[key] if where == "kw" else args[key]
        new = set_output(old, "joint", T, stream, new)
    if where == "kw":
        kwargs[key] = new
    else:
        args[key] = new
    return tuple(args), kwargs


def get_item(value, index, T: int | None = None, stream: str = "img"):
    if index == "joint":
        return get_output(value, "joint", T, stream)
    return value if index is None else value[index]


def set_item(value, index, new, T: int | None = None, stream: str = "img"):
    if index == "joint":
        return set_output(value, "joint", T, stream, new)
    if index is None:
        return new
    out = list(value)
    out[index] = new
    return tuple(out)
