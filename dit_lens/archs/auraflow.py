"""AuraFlowTransformer2DModel (AuraFlow): MM-DiT blocks returning (txt, img), then single blocks taking and
returning one [txt; img] tensor; CFG batched. Inside the blocks the text stream starts with 8 learned register
tokens."""

from .spec import Arch, joint, mmdit_double, single_stream

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="AuraFlowTransformer2DModel",
    families=(
        mmdit_double("joint_transformer_blocks"),
        single_stream(output="joint", sites={"attn_out": joint("attn"), "mlp_out": joint("ff")}),
    ),
    text_extra="register_tokens",
)
