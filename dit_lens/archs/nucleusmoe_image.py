"""NucleusMoEImageTransformer2DModel (Nucleus-MoE-Image): blocks take the image stream and the text as context and
return the image stream only (mixture-of-experts feed-forward); CFG as a cond and an uncond call per step when
``guidance_scale > 1`` (the pipeline's default 4.0; without a negative prompt it encodes an empty one)."""

from .spec import Arch, Family, SequentialCFG

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="NucleusMoEImageTransformer2DModel",
    timestep=("timestep", 4),
    text=("encoder_hidden_states", 2),
    families=(
        Family("blocks", "transformer_blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn", None)}, "mlp_out": {"img": ("img_mlp", None)}}),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 4.0, ()),
)
