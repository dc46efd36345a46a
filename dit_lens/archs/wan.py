"""WanTransformer3DModel (Wan 2.1, Wan 2.2 TI2V-5B): video blocks on the image (video) tokens, returning them only;
the text enters by cross-attention (``attn2``). Tokens are (frames, rows, cols) of the patched latent video. The
pipeline calls the transformer twice per step (cond, then uncond) whenever ``guidance_scale > 1``. Wan 2.2's
two-expert pipelines (a ``transformer_2`` for the low-noise steps) are refused: dit-lens follows one transformer."""

from .spec import Arch, Family, Grid, SequentialCFG

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="WanTransformer3DModel",
    timestep=("timestep", 1),
    text=("encoder_hidden_states", 2),
    families=(
        Family("blocks", "blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}, "xattn_out": {"img": ("attn2", None)},
                      "mlp_out": {"img": ("ffn", None)}}),
    ),
    sequential_cfg=SequentialCFG("guidance_scale", 5.0, ()),
    grid=Grid("bcfhw", patch=("patch_size[0]", "patch_size[1]", "patch_size[2]")),
    refuse_components=(("transformer_2", "Wan 2.2's low-noise expert runs the later steps; dit-lens reads and edits "
                                         "one transformer per run"),),
)
