"""SanaVideoTransformer3DModel (SANA-Video): Sana's linear-attention blocks over the video tokens, called with
positional arguments (hidden_states, mask, encoder_hidden_states, ...), returning the image (video) stream only;
self-attention ``attn_out``, cross-attention to the text ``xattn_out``; its feed-forward works on a feature map,
not on tokens: no ``mlp_out``. Tokens are (frames, rows, cols) of the patched latent video. CFG batched as
[uncond; cond]."""

from .spec import Arch, Family, Grid

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="SanaVideoTransformer3DModel",
    families=(
        Family("blocks", "transformer_blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}, "xattn_out": {"img": ("attn2", None)}}),
    ),
    grid=Grid("bcfhw", patch=("patch_size[0]", "patch_size[1]", "patch_size[2]")),
)
