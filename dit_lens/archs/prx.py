"""PRXTransformer2DModel (PRX): `blocks` take the image stream and the text as context and return the image stream
only; CFG batched as [uncond; cond]. (diffusers 0.42.1's PRXPipeline repeats the timestep twice rather than per
row, so its CFG runs only one prompt at a time; the contract row runs without CFG.)"""

from .spec import Arch, Family

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="PRXTransformer2DModel",
    timestep=("timestep", 1),
    text=("encoder_hidden_states", 2),
    families=(
        Family("blocks", "blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attention", None)}, "mlp_out": {"img": ("down_proj", None)}}),
    ),
)
