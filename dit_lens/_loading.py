"""The state a pipeline comes in — dtype, offloading, quantization, compilation, other hooks — checked before a run.

    apply_dtype(pipeline, torch_dtype)   cast an in-memory pipeline (what ``from_pretrained(torch_dtype=)`` does)
    check_loadable(pipeline, warn=True)  raise for states the lens cannot trace (torch.compile), warn for float16
    foreign_hooks(transformer, paths)    blocks with torch forward hooks, which run after dit-lens reads a block's
                                         output (so a hook that changes it makes the next block's input differ)
    check_path(model)                    a pipeline folder with a readable model_index.json, or a hub id
    check_device(device)                 a device torch knows and can see

What works through the lens, tested on tiny configs (tests/test_loading.py): float32, bfloat16 and float16
weights; diffusers' layerwise casting; group offloading; model CPU offloading (accelerate's hooks, which diffusers
re-adds after every pipeline call, are re-instrumented before each run); torchao and optimum-quanto quantized
weights; LoRA adapters loaded with ``load_lora_weights``. docs/real-models.md lists the rest.
"""

from __future__ import annotations

import warnings

import torch

from .errors import ArgumentError, UnsupportedModelError

__all__ = ["apply_dtype", "check_loadable", "foreign_hooks", "check_path", "check_device"]


def apply_dtype(pipeline, torch_dtype) -> None:
    if torch_dtype is not None:
        pipeline.to(torch_dtype)


def _compiled(module: torch.nn.Module) -> list[str]:
    """Paths of submodules compiled in place (``module.compile()``, diffusers' ``compile_repeated_blocks``)."""
    return [name or "(the transformer)" for name, m in module.named_modules()
            if getattr(m, "_compiled_call_impl", None) is not None]


def check_loadable(pipeline, warn: bool = True) -> None:
    """Raise for a transformer the lens cannot trace; warn (``warn``) where values may not be what the model means."""
    transformer = pipeline.transformer
    if isinstance(transformer, getattr(torch._dynamo.eval_frame, "OptimizedModule", ())):
        raise UnsupportedModelError("the pipeline's transformer is torch.compile'd (an OptimizedModule): dit-lens "
                                    "reads and edits blocks through nnsight, which a compiled graph bypasses. Give "
                                    "the lens the uncompiled transformer (pipeline.transformer._orig_mod)")
    compiled = _compiled(transformer)
    if compiled:
        raise UnsupportedModelError(f"torch.compile is set on {compiled[:4]}{' ...' if len(compiled) > 4 else ''}: "
                                    f"nnsight replaces each block's forward during a run, which compiled code skips "
                                    f"or recompiles at every call (reads would not be the model's values). Load the "
                                    f"pipeline again without compiling it")
    if warn and transformer.dtype == torch.float16:
        warnings.warn("the transformer runs in float16, whose range ends at 65,504: massive activations of real DiTs "
                      "exceed it (FLUX.1-dev reaches ~92k) and diffusers clips Flux-family block outputs there. "
                      "dit-lens records what the model computes; use bfloat16 to see the values unclipped",
                      RuntimeWarning, stacklevel=3)


def foreign_hooks(transformer, paths) -> list[str]:
    """Block paths (of ``paths``) with torch forward hooks registered on them."""
    return [p for p in paths if transformer.get_submodule(p)._forward_hooks]


def check_path(model: str) -> None:
    """A pipeline folder must hold a readable model_index.json; a string that is a path but no folder is an error;
    anything else ('owner/name') goes to the hub."""
    import json
    import os

    if os.path.exists(model):
        index = os.path.join(model, "model_index.json")
        if not os.path.isfile(index):
            raise ArgumentError(f"{model!r} is not a diffusers pipeline folder: it has no model_index.json (write "
                                f"one with pipeline.save_pretrained)")
        try:
            with open(index) as f:
                json.load(f)
        except ValueError as e:
            raise ArgumentError(f"{index} is not valid JSON ({e})") from e
    elif model.startswith(("/", ".", "~")) or model.count("/") > 1:
        raise ArgumentError(f"no such folder {model!r} (a hub id is 'owner/name')")


def check_device(device) -> None:
    device = torch.device(device)  # an unknown type raises here, naming the valid ones
    if device.type == "cuda" and not torch.cuda.is_available():
        built = "with" if torch.backends.cuda.is_built() else "without"
        raise ArgumentError(f"device {str(device)!r}: torch {torch.__version__} (built {built} CUDA) sees no CUDA "
                            f"device")
