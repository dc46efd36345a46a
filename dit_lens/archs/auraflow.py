"""AuraFlowTransformer2DModel (AuraFlow): MM-DiT blocks returning (txt, img), then single blocks taking and
returning one [txt; img] tensor; CFG batched. Inside the blocks the text stream starts with 8 learned register
tokens."""

from .spec import Arch, Family, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="AuraFlowTransformer2DModel",
    families=(
        mmdit_double("joint_transformer_blocks"),
        Family("single", "single_transformer_blocks", output="joint", inputs={"joint": ("hidden_states", 0)}),
    ),
    text_extra="register_tokens",
)
