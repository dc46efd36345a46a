"""Flux2Transformer2DModel (FLUX.2 dev/klein): double blocks return (txt, img); single blocks take and return one
[txt; img] tensor."""

from ._spec import Arch, Family

ARCH = Arch(
    model_class="Flux2Transformer2DModel",
    families=(
        Family("double", "transformer_blocks", output="txt,img",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)},
                      "mlp_out": {"img": ("ff", None), "txt": ("ff_context", None)}}),
        Family("single", "single_transformer_blocks", output="joint", inputs={"joint": ("hidden_states", 0)}),
    ),
)
