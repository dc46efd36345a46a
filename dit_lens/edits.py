"""Interventions as small frozen records: what to do to which names, steps, CFG branch, tokens and channels.

    Edit                          the record (``to_dict`` describes it for reports)
    zero, set_to, scale, add, patch   constructors for the five kinds
    Edit.check(name, tokens, channels, num_steps)   raise before a run if the selection does not fit the name
    Edit.apply(h, step)           the edited copy of ``h`` (rows, tokens, channels) — never in place

``set_to`` with one value per selected channel is mean-ablation; ``patch`` takes a tensor (rows or not) or a
``{step: tensor}`` mapping, e.g. from a cache of another run, and optionally a ``mask`` (rows x selected tokens,
or ``{step: mask}``) of the tokens that move in each row: a spatial mask per sample, e.g. its subject's tokens. A
value's last dims must match the selection (tokens x channels, or channels); mismatches raise before anything is
written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch

from ._checks import index as _index
from .errors import ArgumentError, OutOfRangeError

__all__ = ["KINDS", "Edit", "zero", "set_to", "scale", "add", "patch"]

KINDS = ("zero", "set", "scale", "add", "patch")
BRANCHES = ("cond", "uncond")


def _tuple(v, field: str = "indices") -> tuple | None:
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        return (_index(field, v),)
    return tuple(_index(field, x) for x in v)


def _finite(label: str, value):
    """``value`` (a number or tensor) if every element is finite, else an ArgumentError: an inf or NaN edit value
    would turn the whole image into NaN."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value, dtype=torch.float64)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ArgumentError(f"{label} holds inf or NaN values")
    return value


def _number(label: str, x) -> float:
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise ArgumentError(f"{label}={x!r} is not a number") from None
    return _finite(label, value)


@dataclass(frozen=True)
class Edit:
    kind: str
    names: tuple  # canonical names or globs
    value: Any = None
    steps: tuple | None = None  # denoising step indices; None = every step
    cfg: str | None = None  # "cond" | "uncond"; None = every row
    tokens: tuple | None = None  # token indices within the stream; None = all
    channels: tuple | None = None  # channel indices; None = all
    alpha: float = 1.0  # patch strength: selection + alpha * (value - selection)
    mask: Any = None  # patch only: (rows, selected tokens) bool, or {step: that}: the tokens that move per row

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ArgumentError(f"edit kind {self.kind!r} not in {KINDS}")
        if self.cfg is not None and self.cfg not in BRANCHES:
            raise ArgumentError(f"cfg={self.cfg!r}: expected one of {BRANCHES} or None")
        if self.kind in ("set", "scale", "add", "patch") and self.value is None:
            raise ArgumentError(f"a {self.kind!r} edit needs a value")
        if self.mask is not None and self.kind != "patch":
            raise ArgumentError(f"mask= selects the tokens a patch moves per row; a {self.kind!r} edit takes tokens=")
        for field in ("steps", "tokens", "channels"):
            sel = getattr(self, field)
            if sel is not None and (len(sel) == 0 or min(sel) < 0):
                raise ArgumentError(f"{field}={sel}: indices must be a non-empty list of non-negative integers")

    def applies_at(self, step: int) -> bool:
        if self.steps is not None and step not in self.steps:
            return False
        return not (isinstance(self.value, Mapping) and step not in self.value)

    def check(self, name: str, tokens: int | None, channels: int, num_steps: int | None, where: str = "") -> None:
        """Raise if the selection does not fit a name of ``tokens`` x ``channels`` in a run of ``num_steps``
        (``None``: not known yet, not checked); ``where`` names the call, e.g. "the uncond call of step 0"."""
        for field, size in (("tokens", tokens), ("channels", channels), ("steps", num_steps)):
            sel = getattr(self, field)
            if sel is not None and size is not None and max(sel) >= size:
                raise OutOfRangeError(f"{self.kind} edit on {name}: {field} index {max(sel)} out of range "
                                      f"(valid 0..{size - 1}{' in ' + where if where else ''})")
        if self.mask is not None:
            want = len(self.tokens) if self.tokens is not None else tokens
            masks = self.mask.values() if isinstance(self.mask, Mapping) else [self.mask]
            bad = sorted({int(m.shape[1]) for m in masks} - ({want} if want is not None else set()))
            if want is not None and bad:
                raise ArgumentError(f"patch edit on {name}: mask covers {bad} tokens, the selection has {want}"
                                    f"{' in ' + where if where else ''}")
        if isinstance(self.value, Mapping) and num_steps is not None:
            bad = [s for s in self.value if not 0 <= int(s) < num_steps]
            if bad:
                raise OutOfRangeError(f"{self.kind} edit on {name}: value given for steps {bad}, run has {num_steps}")

    def _value_at(self, step: int) -> Any:
        return self.value[step] if isinstance(self.value, Mapping) else self.value

    def _mask_at(self, step: int, sub: torch.Tensor):
        """This step's mask as (rows, tokens, 1) in ``sub``'s dtype, checked against the selection."""
        m = self.mask.get(step) if isinstance(self.mask, Mapping) else self.mask
        if m is None:
            raise ArgumentError(f"patch edit: mask given for steps {sorted(self.mask)}, not for step {step}")
        m = m.to(device=sub.device)
        if tuple(m.shape) != tuple(sub.shape[:2]):
            raise ArgumentError(f"patch edit: mask of shape {tuple(m.shape)} does not fit the selection's (rows, "
                                f"tokens) = {tuple(sub.shape[:2])}")
        return m.to(sub.dtype)[..., None]

    def apply(self, h: torch.Tensor, step: int) -> torch.Tensor:
        """Return an edited copy of ``h`` (rows, tokens, channels)."""
        tok = slice(None) if self.tokens is None else torch.tensor(self.tokens, device=h.device)
        ch = slice(None) if self.channels is None else torch.tensor(self.channels, device=h.device)
        out = h.clone()
        sub = out[:, tok] if self.tokens is not None else out
        sub = sub[:, :, ch] if self.channels is not None else sub
        v = self._value_at(step)
        if isinstance(v, torch.Tensor):
            v = v.to(device=h.device, dtype=h.dtype)
            if v.dim() and v.shape[-1] != sub.shape[-1] or v.dim() >= 2 and v.shape[-2] != sub.shape[-2]:
                raise ArgumentError(f"{self.kind} edit: value of shape {tuple(v.shape)} does not fit the selection "
                                 f"(rows, tokens, channels) = {tuple(sub.shape)}")
        if self.kind == "zero":
            new = torch.zeros_like(sub)
        elif self.kind == "scale":
            new = sub * v
        elif self.kind == "add":
            new = sub + v
        elif self.kind == "patch" and self.mask is not None:
            new = sub + self.alpha * self._mask_at(step, sub) * (v - sub)
        elif self.kind == "patch" and self.alpha != 1.0:
            new = sub + self.alpha * (v - sub)
        else:  # set / patch
            new = torch.zeros_like(sub) + v
        if self.tokens is not None and self.channels is not None:
            rows = torch.arange(h.shape[0], device=h.device)[:, None, None]
            out[rows, tok[None, :, None], ch[None, None, :]] = new
        elif self.tokens is not None:
            out[:, tok] = new
        elif self.channels is not None:
            out[:, :, ch] = new
        else:
            out = new
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        v = self.value
        if isinstance(v, torch.Tensor):
            d["value"] = {"tensor_shape": list(v.shape)}
        elif isinstance(v, Mapping):
            d["value"] = {"steps": sorted(int(s) for s in v)}
        m = self.mask
        if isinstance(m, torch.Tensor):
            d["mask"] = {"tensor_shape": list(m.shape), "selected": int(m.sum())}
        elif isinstance(m, Mapping):
            d["mask"] = {"steps": sorted(int(s) for s in m)}
        return d


def _make(kind: str, names, value=None, *, steps=None, cfg=None, tokens=None, channels=None, alpha=1.0,
          mask=None) -> Edit:
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ArgumentError(f"a {kind} edit needs canonical names or globs (strings), got {names!r}")
    return Edit(kind, names, value, _tuple(steps, "steps"), cfg, _tuple(tokens, "tokens"),
                _tuple(channels, "channels"), _number("alpha", alpha), mask)


def zero(names: str | Sequence[str], **where) -> Edit:
    """Zero the selection."""
    return _make("zero", names, **where)


def set_to(names: str | Sequence[str], value, **where) -> Edit:
    """Set the selection to ``value`` (a number, or a tensor broadcast over it: per-channel means = mean-ablation)."""
    if isinstance(value, Mapping):
        raise ArgumentError("set_to takes one value (a number or a tensor); per-step values are patch's")
    return _make("set", names, _finite("set_to value", torch.as_tensor(value, dtype=torch.float32)), **where)


def scale(names: str | Sequence[str], factor: float, **where) -> Edit:
    """Multiply the selection by ``factor``."""
    return _make("scale", names, _number("scale factor", factor), **where)


def add(names: str | Sequence[str], vector, **where) -> Edit:
    """Add ``vector`` (broadcast over the selection, e.g. one value per selected channel)."""
    return _make("add", names, _finite("add vector", torch.as_tensor(vector, dtype=torch.float32)), **where)


def patch(names: str | Sequence[str], source, alpha: float = 1.0, mask=None, **where) -> Edit:
    """Replace the selection by ``source`` (a tensor, or ``{step: tensor}``: only those steps are patched); with
    ``alpha`` < 1 move it that fraction of the way (selection + alpha * (source - selection)). Step keys are
    integers (a key "1" would never match step 1, so it is an error); values are finite tensors. ``mask`` (bool,
    rows x selected tokens, or ``{step: mask}`` with a mask for every patched step) moves only the tokens it marks
    in each row: a joint channel x per-sample spatial mask."""
    if mask is not None:
        if isinstance(mask, Mapping):
            mask = {_index("patch mask step key", s): torch.as_tensor(m, dtype=torch.bool) for s, m in mask.items()}
            if isinstance(source, Mapping) and set(mask) != {int(s) for s in source}:
                raise ArgumentError(f"patch: mask steps {sorted(mask)} differ from the value's steps "
                                    f"{sorted(int(s) for s in source)}")
        else:
            mask = torch.as_tensor(mask, dtype=torch.bool)
        if any(m.dim() != 2 for m in (mask.values() if isinstance(mask, Mapping) else [mask])):
            raise ArgumentError("patch: a mask is 2-D (rows, selected tokens)")
    if isinstance(source, Mapping):
        if not source:
            raise ArgumentError("patch: the {step: tensor} mapping is empty: nothing would be patched")
        source = {_index("patch step key", s): _finite(f"patch value of step {s}", torch.as_tensor(v))
                  for s, v in source.items()}
    else:
        source = _finite("patch value", torch.as_tensor(source))
    return _make("patch", names, source, alpha=alpha, mask=mask, **where)
