"""SD3Transformer2DModel (SD3, SD3.5): joint blocks returning (txt, img); the last block returns (None, img)."""

from ._spec import Arch, Family

ARCH = Arch(
    model_class="SD3Transformer2DModel",
    families=(
        Family("double", "transformer_blocks", output="txt,img",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)},
                      "mlp_out": {"img": ("ff", None), "txt": ("ff_context", None)}},
               txt_may_be_none=True),
    ),
)
