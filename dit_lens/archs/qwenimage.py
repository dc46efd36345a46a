"""QwenImageTransformer2DModel (Qwen-Image): double-stream blocks returning (txt, img); the pipeline calls the
transformer twice per step (cond, then uncond) when ``true_cfg_scale > 1`` with a negative prompt."""

from ._spec import Arch, Family, SequentialCFG

ARCH = Arch(
    model_class="QwenImageTransformer2DModel",
    families=(
        Family("double", "transformer_blocks", output="txt,img",
               inputs={"img": ("hidden_states", 0), "txt": ("encoder_hidden_states", 1)},
               sites={"attn_out": {"img": ("attn", 0), "txt": ("attn", 1)},
                      "mlp_out": {"img": ("img_mlp", None), "txt": ("txt_mlp", None)}}),
    ),
    sequential_cfg=SequentialCFG("true_cfg_scale", 4.0, ("negative_prompt", "negative_prompt_embeds")),
)
