"""Registry of architecture files: one module per diffusers DiT class, each defining ``ARCH``.

    ARCHS                  model class name -> Arch
    UNSUPPORTED            image DiT class name -> what stands in the way of an adapter (``_unsupported.py``)
    arch_for(transformer)  the Arch of a transformer module (an unsupported class is an ``UnsupportedModelError``
                           saying why, and listing the supported ones)

The types an architecture file fills in are public, in ``dit_lens.archs.spec``. Adding an architecture = one file
here defining ``ARCH`` + one row in ``dit_lens.testing.ROWS`` (a tiny random-weight pipeline of that class), which
the shared contract tests (tests/test_contract.py) then run; a test fails while an adapter has no row.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from ..errors import AdapterMismatch, UnsupportedModelError
from ._unsupported import IMAGE_DITS, UNSUPPORTED
from .spec import Arch, Family, GuiderCFG, SequentialCFG

__all__ = ["ARCHS", "UNSUPPORTED", "IMAGE_DITS", "Arch", "Family", "GuiderCFG", "SequentialCFG", "arch_for"]


def _load() -> dict[str, Arch]:
    found: dict[str, Arch] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "spec":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        arch = dataclasses.replace(module.ARCH, source=module.__name__)
        if arch.model_class in found:
            raise AdapterMismatch(f"{arch.model_class} is declared twice: {found[arch.model_class].source}, "
                               f"{arch.source}")
        found[arch.model_class] = arch
    return found


ARCHS: dict[str, Arch] = _load()


def arch_for(transformer) -> Arch:
    for klass in type(transformer).__mro__:
        if klass.__name__ in ARCHS:
            return ARCHS[klass.__name__]
    name = type(transformer).__name__
    why = f" ({UNSUPPORTED[name]})" if name in UNSUPPORTED else ""
    raise UnsupportedModelError(f"dit-lens has no adapter for {name}{why}; supported transformer classes: "
                                f"{', '.join(sorted(ARCHS))}. Adding one is one file in dit_lens/archs/ "
                                f"(docs/extending.md); `dit-lens support` lists every class and its status.")
