"""The data types an architecture file fills in (public: what an adapter author writes; no logic beyond field
checks and the sequential-CFG rule).

    Family(name, path, output, inputs, sites, txt_may_be_none)   one ModuleList of blocks
    SequentialCFG(scale, default, needs, order)                  pipelines calling the transformer once per branch;
                                                                 ``.active(kwargs)`` says whether a call does
    GuiderCFG(components, order)                                 the same, decided by the pipeline's guider
                                                                 components (diffusers' ``guiders``)
    Grid(dims, latent, patch, sizes)                             a video transformer's token grid (frames, rows,
                                                                 cols), ``.measure(args, kwargs, config)``
    Arch(model_class, families, ...)                              one diffusers transformer class;
                                                                 ``.calls_per_step(kwargs)`` is 1 or 2
    mmdit_double(path, mlp)                                      the common MM-DiT two-stream block family
    single_stream(path, output, sites)                           the common single-stream block family (Flux-style)
    joint(sub)                                                   a sub-site whose module returns [txt; img]

Layout strings, for a block's return value (``output``) and for where its streams come in (``inputs``):
    "txt,img"  a tuple (txt, img)          "img,txt"  a tuple (img, txt)
    "img"      the image stream only        "joint"    one tensor [txt; img] split at the text length

Sites inside a block (``Family.sites``), in execution order: ``attn_out`` (self-attention), ``attn2_out`` (a second
self-attention, SD3.5's dual attention), ``xattn_out`` (cross-attention to the text), ``mlp_out`` (feed-forward).
Each maps a stream to (sub-module path, index): index None when the module returns the stream itself, an integer for
an element of its tuple, "joint" when it returns [txt; img] (single-stream blocks). docs/architectures.md lists, per
family, what each site is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ArgumentError

__all__ = ["LAYOUTS", "Family", "SequentialCFG", "GuiderCFG", "Grid", "Arch", "mmdit_double", "single_stream", "joint"]

LAYOUTS = ("txt,img", "img,txt", "img", "joint")


@dataclass(frozen=True)
class Family:
    name: str  # canonical family: double | single | blocks
    path: str  # the ModuleList attribute on the transformer
    output: str  # layout of the block's return value
    inputs: dict  # stream ("img" | "txt" | "joint") -> (keyword, position) of the block's argument
    # site -> stream -> (submodule path inside the block, index into its output or None for a plain tensor)
    sites: dict = field(default_factory=dict)
    txt_may_be_none: bool = False  # a block may return None for the text stream (SD3's last block)

    def __post_init__(self):
        if self.output not in LAYOUTS:
            raise ArgumentError(f"family {self.name}: output layout {self.output!r} not in {LAYOUTS}")


@dataclass(frozen=True)
class SequentialCFG:
    """The pipeline calls the transformer twice per step (cond then uncond, or as ``order`` says) when the keyword
    ``scale`` (default: the pipeline's own default for it, else ``default``) is > 1 and, if ``needs`` is not empty,
    one of the keywords in ``needs`` is given; only for the pipeline classes in ``pipelines`` (empty: all), and not
    when the pipeline's config flag ``unless`` is set (FLUX.2-klein's ``is_distilled``)."""

    scale: str
    default: float
    needs: tuple
    order: tuple = ("cond", "uncond")
    pipelines: tuple = ()
    unless: str | None = None

    def active(self, kwargs: dict, pipeline=None) -> bool:
        """Whether a call of ``pipeline`` with these keyword arguments makes one transformer call per branch."""
        import inspect

        if pipeline is not None:
            if self.pipelines and type(pipeline).__name__ not in self.pipelines:
                return False
            if self.unless and getattr(pipeline, "config", {}).get(self.unless):
                return False
        default = self.default
        if pipeline is not None:
            p = inspect.signature(pipeline.__call__).parameters.get(self.scale)
            default = default if p is None or p.default is inspect.Parameter.empty else p.default
        scale = kwargs.get(self.scale, default)
        return scale is not None and scale > 1 and (not self.needs or any(kwargs.get(k) is not None
                                                                            for k in self.needs))

    def describe(self) -> str:
        return f"sequential when {self.scale} > 1"


@dataclass(frozen=True)
class GuiderCFG:
    """The pipeline runs guidance through diffusers guider components (``components``: attribute names on the
    pipeline): one transformer call per condition the guider holds, conditional first. dit-lens reads one call
    (guidance off, or a guider with one condition) or two (classifier-free guidance); a guider with more conditions
    (e.g. perturbed-attention guidance) is refused. Where the pipeline picks one of several guiders per prompt
    (HunyuanImage's OCR guider), they must agree."""

    components: tuple = ("guider",)
    order: tuple = ("cond", "uncond")

    def active(self, kwargs: dict, pipeline=None) -> bool:
        if pipeline is None:
            return False
        counts = {}
        for name in self.components:
            guider = getattr(pipeline, name, None)
            if guider is None:
                continue
            counts[name] = int(guider.num_conditions) if getattr(guider, "_enabled", True) else 1
            window = (getattr(guider, "_start", 0.0), getattr(guider, "_stop", 1.0))
            if counts[name] > 1 and window != (0.0, 1.0):
                raise ArgumentError(f"{type(pipeline).__name__}.{name} guides only from {window[0]} to {window[1]} "
                                    f"of the steps, so steps differ in transformer calls; dit-lens needs the same "
                                    f"calls every step (start=0.0, stop=1.0)")
        if any(n > 2 for n in counts.values()):
            raise ArgumentError(f"{type(pipeline).__name__}'s guiders {counts} make more than two transformer "
                                f"calls per step; dit-lens reads one (no guidance) or two (cond, uncond)")
        if len(set(counts.values())) > 1:
            raise ArgumentError(f"{type(pipeline).__name__} picks one of its guiders per prompt and they differ in "
                                f"calls per step ({counts}); set them alike (e.g. pipe.ocr_guider = "
                                f"pipe.guider) so every step makes the same calls")
        return set(counts.values()) == {2}

    def describe(self) -> str:
        return f"sequential when the pipeline's {' / '.join(self.components)} has two conditions"


@dataclass(frozen=True)
class Grid:
    """Where a video transformer's image tokens sit: (frames, rows, cols), measured from its latent argument at a
    call. ``dims``: that argument's axes ("bcfhw", or "bfchw" for CogVideoX); ``patch``: the (frame, row, col)
    patch sizes, each an int or a config attribute ("patch_size", or "patch_size[1]" for an element of a tuple; a
    None attribute counts 1); ``sizes``: for a transformer that takes packed tokens (LTX-Video), the (keyword,
    position) arguments holding its latent frames, height and width instead."""

    dims: str = "bcfhw"
    latent: tuple = ("hidden_states", 0)
    patch: tuple = (1, "patch_size", "patch_size")
    sizes: tuple | None = None

    def measure(self, args, kwargs, config) -> tuple:
        """(frames, rows, cols) of this call's image tokens."""
        def arg(spec):
            kw, pos = spec
            return kwargs[kw] if kw in kwargs else args[pos]

        if self.sizes is not None:
            f, h, w = (int(arg(s)) for s in self.sizes)
        else:
            shape = dict(zip(self.dims, arg(self.latent).shape))
            f, h, w = shape["f"], shape["h"], shape["w"]
        return tuple(n // self._patch(p, config) for n, p in zip((f, h, w), self.patch))

    @staticmethod
    def _patch(p, config) -> int:
        if isinstance(p, int):
            return p
        name, _, index = p.partition("[")
        value = config[name] if isinstance(config, dict) else getattr(config, name)
        if index:
            value = value[int(index.rstrip("]"))]
        return 1 if value is None else int(value)


@dataclass(frozen=True)
class Arch:
    model_class: str  # diffusers class name of the transformer
    families: tuple  # Family, ...
    timestep: tuple = ("timestep", 2)  # (keyword, position) of the transformer's timestep argument
    text: tuple = ("encoder_hidden_states", 1)  # (keyword, position) of its text-embedding argument
    # (keyword, position) of a pooled text embedding that conditions every block's modulation (adaLN), if any
    pooled: tuple | None = None
    sequential_cfg: SequentialCFG | GuiderCFG | None = None
    # the rows of a call that batches CFG: [uncond; cond] in most pipelines, [cond; uncond] in a few (Lumina-Next)
    batch_order: tuple = ("uncond", "cond")
    grid: Grid | None = None  # video transformers: how the image tokens map to (frames, rows, cols)
    # steps the validation dry run makes at least (it reads the first call only): Mochi's schedule needs 2
    min_steps: int = 1
    # pipeline components dit-lens cannot follow yet, with why: (attribute, reason), refused when not None
    refuse_components: tuple = ()
    # a transformer attribute (tensor) whose dim-1 length is prepended to the text inside the blocks (registers)
    text_extra: str | None = None
    # further text arguments whose tokens join the text stream inside the blocks: (transformer keyword, position,
    # the pipeline's keyword for them), e.g. HunyuanImage's glyph (byT5) embeddings
    text_more: tuple = ()
    # pipeline keywords dit-lens cannot follow yet, with why: (keyword, reason), refused when given (not None)
    refuse: tuple = ()
    source: str = ""  # filled in by the registry: the file that declares this arch

    def calls_per_step(self, kwargs: dict, pipeline=None) -> int:
        """Transformer calls per denoising step of a call of ``pipeline`` with these keyword arguments: 2 where the
        pipeline runs classifier-free guidance as separate cond and uncond calls, else 1 (an ``ArgumentError`` for
        a keyword the adapter refuses)."""
        for keyword, why in self.refuse:
            if kwargs.get(keyword) is not None:
                raise ArgumentError(f"{self.model_class}: {keyword}= is not supported by dit-lens yet ({why})")
        for component, why in self.refuse_components:
            if getattr(pipeline, component, None) is not None:
                raise ArgumentError(f"{type(pipeline).__name__} with a {component}: not supported by dit-lens yet "
                                    f"({why})")
        return 2 if self.sequential_cfg is not None and self.sequential_cfg.active(kwargs, pipeline) else 1


def mmdit_double(path: str = "transformer_blocks", mlp: tuple = ("ff", "ff_context"), attn2: str | None = None,
                 output: str = "txt,img", attn: str = "attn", **kw) -> Family:
    """The common two-stream (MM-DiT) block: takes ``hidden_states`` (img) and ``encoder_hidden_states`` (txt),
    returns (txt, img) (``output="img,txt"``: the reverse); its ``attn`` module returns (img, txt); ``mlp`` names the image and text feed-forward modules;
    ``attn2`` a second image self-attention module, where blocks have one."""
    sites = {"attn_out": {"img": (attn, 0), "txt": (attn, 1)},
             "mlp_out": {"img": (mlp[0], None), "txt": (mlp[1], None)}}
    if attn2 is not None:
        sites["attn2_out"] = {"img": (attn2, None)}
    return Family("double", path, output=output,
                  inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)}, sites=sites, **kw)


def joint(sub: str) -> dict:
    """Both streams of a sub-module that returns one [txt; img] tensor (split at the block's text length)."""
    return {"img": (sub, "joint"), "txt": (sub, "joint")}


def single_stream(path: str = "single_transformer_blocks", output: str = "txt,img", sites: dict | None = None,
                  **kw) -> Family:
    """The common single-stream block: text and image run as one [txt; img] sequence through ``attn`` (returning the
    joint sequence, before the block's output projection). ``output="txt,img"``: the block takes ``hidden_states``
    (img) and ``encoder_hidden_states`` (txt) and returns (txt, img); ``output="joint"``: it takes and returns the
    joint tensor as ``hidden_states``."""
    inputs = {"joint": ("hidden_states", 0)} if output == "joint" else \
        {"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)}
    return Family("single", path, output=output, inputs=inputs,
                  sites={"attn_out": joint("attn")} if sites is None else sites, **kw)
