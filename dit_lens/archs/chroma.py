"""ChromaTransformer2DModel (Chroma): Flux-like double blocks returning (txt, img), single blocks taking and
returning one [txt; img] tensor; the pipeline calls the transformer twice per step (cond, then uncond) whenever
``guidance_scale > 1``."""

from ._spec import Arch, Family, SequentialCFG

ARCH = Arch(
    model_class="ChromaTransformer2DModel",
    families=(
        Family("double", "transformer_blocks", output="txt,img",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)},
                      "mlp_out": {"img": ("ff", None), "txt": ("ff_context", None)}}),
        Family("single", "single_transformer_blocks", output="joint", inputs={"joint": ("hidden_states", 0)}),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 5.0, ()),
)
