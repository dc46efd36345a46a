"""The ``dit-lens`` command: one subcommand per public function.

    dit-lens names [PATTERN ...] [--model M] [--json]    canonical names of a model (with shapes and depth)
    dit-lens demo --out DIR [--model tiny]               generate a grid with the embedded model and score it

``--model`` is "tiny" (the embedded model, the default), a folder in diffusers' save_pretrained layout, or a hub id.
"""

from __future__ import annotations

import argparse
import json
import sys


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="tiny",
                   help='"tiny" (embedded, default), a save_pretrained folder, or a hub id')


def _names(a) -> int:
    from .lens import Lens

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
    from .tiny.demo import demo

    demo(a.out, model=a.model, steps=a.steps, seed=a.seed)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="dit-lens", description="Name-addressed interpretability for Diffusion "
                                "Transformers (nnsight + diffusers).")
    sub = p.add_subparsers(dest="command", required=True)
    n = sub.add_parser("names", help="list a model's canonical names")
    n.add_argument("pattern", nargs="*", help="names or globs, e.g. 'double.*.img.resid_post'")
    n.add_argument("--json", action="store_true", help="machine-readable output with shapes and depth")
    _model_arg(n)
    n.set_defaults(fn=_names)
    d = sub.add_parser("demo", help="generate a grid with the embedded model and score it against ground truth")
    d.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    d.add_argument("--steps", type=int, default=20, help="denoising steps (default 20)")
    d.add_argument("--seed", type=int, default=0)
    _model_arg(d)
    d.set_defaults(fn=_demo)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except (KeyError, ValueError, TypeError, IndexError, FileNotFoundError) as e:
        print(f"dit-lens {a.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
