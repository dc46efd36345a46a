"""SanaTransformer2DModel (SANA, SANA 1.5): cross-attention blocks called with positional arguments
(hidden_states, mask, encoder_hidden_states, ...), returning the image stream only. Its feed-forward works on a 2-D
feature map, so only the self-attention output is exposed as a sub-site."""

from .spec import Arch, Family

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="SanaTransformer2DModel",
    families=(
        Family("blocks", "transformer_blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}}),
    ),
)
