"""LTXVideoTransformer3DModel (LTX-Video): blocks on the packed video tokens, returning them only; the text enters by
cross-attention (``attn2``). The transformer takes packed tokens and the latent frames, height and width as
arguments, which give the (frames, rows, cols) grid. CFG batched as [uncond; cond]."""

from .spec import Arch, Family, Grid

__all__ = ["ARCH"]

ARCH = Arch(
    model_class="LTXVideoTransformer3DModel",
    timestep=("timestep", 2),
    families=(
        Family("blocks", "transformer_blocks", output="img", inputs={"img": ("hidden_states", 0)},
               sites={"attn_out": {"img": ("attn1", None)}, "xattn_out": {"img": ("attn2", None)},
                      "mlp_out": {"img": ("ff", None)}}),
    ),
    grid=Grid(patch=("patch_size_t", "patch_size", "patch_size"),
              sizes=(("num_frames", 4), ("height", 5), ("width", 6))),
)
