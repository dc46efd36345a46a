"""AuraFlowTransformer2DModel (AuraFlow): MM-DiT blocks returning (txt, img), then single blocks taking and
returning one [txt; img] tensor; CFG batched. Inside the blocks the text stream starts with 8 learned register
tokens."""

from ._spec import Arch, Family

ARCH = Arch(
    model_class="AuraFlowTransformer2DModel",
    families=(
        Family("double", "joint_transformer_blocks", output="txt,img",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)},
                      "mlp_out": {"img": ("ff", None), "txt": ("ff_context", None)}}),
        Family("single", "single_transformer_blocks", output="joint", inputs={"joint": ("hidden_states", 0)}),
    ),
    text_extra="register_tokens",
)
