"""The canonical name grammar ``{family}.{i}.{stream}.{site}`` and its errors.

    FAMILIES, STREAMS, SITES   the vocabulary (double | single | blocks, img | txt, resid_pre | ... )
    Name                       a parsed name; ``str(name)`` formats it back
    parse(text)                ``"double.3.img.resid_post"`` -> Name (grammar errors say what is valid)
    describe(valid)            a short summary of a name set (each family's index range, streams and sites)
    expand(patterns, valid)    glob patterns (``double.*.img.resid_post``) -> the matching valid names, in order;
                               a pattern matching nothing raises with the valid families, index ranges and the
                               closest match (``UnknownNameError``)
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import UnknownNameError

__all__ = ["FAMILIES", "STREAMS", "SITES", "Name", "parse", "describe", "expand"]

FAMILIES = ("double", "single", "blocks")
STREAMS = ("img", "txt")
SITES = ("resid_pre", "attn_out", "attn2_out", "xattn_out", "mlp_out", "resid_post")  # execution order in a block


@dataclass(frozen=True, order=True)
class Name:
    family: str
    index: int
    stream: str
    site: str

    def __str__(self) -> str:
        return f"{self.family}.{self.index}.{self.stream}.{self.site}"


def parse(text: str) -> Name:
    parts = str(text).split(".")
    if len(parts) != 4:
        raise UnknownNameError(f"{text!r} is not a canonical name: expected 'family.index.stream.site', "
                         f"e.g. 'double.3.img.resid_post'")
    family, index, stream, site = parts
    problems = []
    if family not in FAMILIES:
        problems.append(f"family {family!r} not in {FAMILIES}")
    if not index.isdigit():
        problems.append(f"index {index!r} is not a non-negative integer")
    if stream not in STREAMS:
        problems.append(f"stream {stream!r} not in {STREAMS}")
    if site not in SITES:
        problems.append(f"site {site!r} not in {SITES}")
    if problems:
        raise UnknownNameError(f"{text!r} is not a canonical name: " + "; ".join(problems))
    return Name(family, int(index), stream, site)


def describe(valid: Sequence[str]) -> str:
    """A short summary of a name set: each family with its index range, streams and sites, e.g.
    ``double.0-1 (img, txt; resid_pre, attn_out, mlp_out, resid_post)``."""
    fams: dict[str, tuple[list, set, set]] = {}
    for n in map(parse, valid):
        ix, streams, sites = fams.setdefault(n.family, ([], set(), set()))
        ix.append(n.index)
        streams.add(n.stream)
        sites.add(n.site)
    return "families " + ", ".join(
        f"{f}.{min(ix)}-{max(ix)} ({', '.join(s for s in STREAMS if s in streams)}; "
        f"{', '.join(s for s in SITES if s in sites)})" for f, (ix, streams, sites) in fams.items())


def expand(patterns: str | Iterable[str], valid: Sequence[str]) -> list[str]:
    """Names in ``valid`` matching any pattern, in ``valid``'s order (depth order), without duplicates."""
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not patterns:
        raise UnknownNameError("no names given")
    valid_set = set(valid)
    chosen: set[str] = set()
    for pat in patterns:
        pat = str(pat)
        if any(c in pat for c in "*?["):
            hits = fnmatch.filter(valid, pat)
        else:
            hits = [pat] if pat in valid_set else []
        if not hits:
            close = difflib.get_close_matches(pat, valid, n=1, cutoff=0.5)
            hint = f"; closest match: {close[0]!r}" if close else ""
            if not any(c in pat for c in "*?["):
                parse(pat)  # a malformed name gets the grammar error first
            raise UnknownNameError(f"{pat!r} matches no name of this model ({describe(valid)}){hint}")
        chosen.update(hits)
    return [n for n in valid if n in chosen]
