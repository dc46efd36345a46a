"""HunyuanImageTransformer2DModel (HunyuanImage 2.1): a token refiner on the text, then double blocks and single
blocks, both taking (hidden_states, encoder_hidden_states) and returning (img, txt). With a second text encoder
(byT5, for glyphs) the text stream inside the blocks is both encoders' tokens, valid ones first. Guidance runs through
the pipeline's guider components: a cond and an uncond call per step when they guide."""

from .spec import Arch, Family, GuiderCFG, mmdit_double

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="HunyuanImageTransformer2DModel",
    timestep=("timestep", 1),
    text=("encoder_hidden_states", 2),
    text_more=(("encoder_hidden_states_2", 5, "prompt_embeds_2"),),
    families=(
        mmdit_double(output="img,txt"),
        Family("single", "single_transformer_blocks", output="img,txt",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)}}),
    ),
    sequential_cfg=GuiderCFG(("guider", "ocr_guider")),
)
