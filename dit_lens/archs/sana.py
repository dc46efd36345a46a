"""SanaTransformer2DModel (SANA, SANA 1.5): cross-attention blocks called with positional arguments
(hidden_states, mask, encoder_hidden_states, ...), returning the image stream only; self-attention ``attn_out``, cross-attention to the text
``xattn_out``. Its feed-forward works on a (rows, channels, height, width) feature map, not on tokens: no
``mlp_out``."""

from .spec import Arch, Family

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="SanaTransformer2DModel",
    families=(
        Family("blocks", "transformer_blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}, "xattn_out": {"img": ("attn2", None)}}),
    ),
)
