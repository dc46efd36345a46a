"""Image DiT classes of diffusers 0.42.1 that have no adapter yet (14 of 34), each with what stands in the way (shown by
``arch_for`` when such a model is loaded, and by ``dit-lens support``). Every image DiT class of diffusers is either
an adapter in this folder or a row here: ``tests/test_support.py`` checks it against the installed diffusers.

Each needs a layout or rule dit-lens does not have yet, named in the reason.
"""

from __future__ import annotations

__all__ = ["UNSUPPORTED", "IMAGE_DITS"]

UNSUPPORTED = {
    "BriaFibo2Transformer2DModel": "text runs through its own `layers` with an injection schedule into the image "
                                   "blocks: needs a family per block list with injected streams",
    "DiTTransformer2DModel": "class-conditional: its pipeline takes class_labels, not prompts or prompt_embeds, and "
                             "always decodes with its VAE; dit-lens counts a run's images from prompts (its CFG "
                             "order [cond; uncond] is an adapter rule, batch_order)",
    "DreamLiteTransformer2DModel": "the transformer inside DreamLite's UNet (DreamLiteUNetModel), as in Stable "
                                   "Diffusion's UNets: its pipeline has no `transformer` component to read",
    "ErnieImageTransformer2DModel": "single-stream `layers` over sequence-first tensors (tokens, batch, channels) "
                                    "holding [img; txt]: needs a sequence-first joint layout",
    "Flux3Transformer2DModel": "text and image run through separate per-modality block lists (`txt_mode_blocks`, "
                               "`mode_blocks['image']`, a ModuleDict) before joint single blocks: needs families "
                               "over a ModuleDict",
    "HiDreamImageTransformer2DModel": "double blocks wrapped (the real block at `.block`) returning (img, txt); single "
                                      "blocks on [img; txt], image first: needs an [img; txt] joint layout",
    "Ideogram4Transformer2DModel": "single-stream `layers` over one sequence whose text and image tokens "
                                   "interleave, marked by the call's `indicator` argument: needs a layout that "
                                   "selects a stream's tokens by a mask",
    "JoyImageEditTransformer3DModel": "an editing model with a frame axis (3-D latents): needs the video token grid",
    "JoyImageEditPlusTransformer3DModel": "an editing model with a frame axis (3-D latents): needs the video token "
                                          "grid",
    "Krea2Transformer2DModel": "layer-wise and refiner blocks on the text before joint `transformer_blocks`: needs "
                               "its stream layout read from its forward",
    "Lumina2Transformer2DModel": "noise and context refiners, then joint `layers` over per-sample padded [img; txt] "
                                 "sequences: needs an [img; txt] joint layout with per-sample lengths",
    "OmniGenTransformer2DModel": "single-stream `layers` over [condition; image] sequences of varying length: needs "
                                 "a joint layout with per-sample lengths",
    "QwenImage21Transformer2DModel": "blocks take and return one joint tensor: text, with the image tokens placed "
                                     "at the call's `img_mask` slots (2 x 2 latent tokens each): needs a layout "
                                     "that selects a stream's tokens by a mask",
    "ZImageTransformer2DModel": "latents as a list of per-sample tensors; refiners, then `layers` over a padded "
                                "unified sequence: needs per-sample token lists",
}

# the 34 image DiT classes of diffusers 0.42.1 (adapters and the rows above); video DiTs are not counted here
IMAGE_DITS = (
    "AuraFlowTransformer2DModel", "BriaFibo2Transformer2DModel", "BriaFiboTransformer2DModel", "BriaTransformer2DModel",
    "ChromaTransformer2DModel", "CogView3PlusTransformer2DModel", "CogView4Transformer2DModel", "DiTTransformer2DModel",
    "DreamLiteTransformer2DModel", "ErnieImageTransformer2DModel", "Flux2Transformer2DModel",
    "Flux3Transformer2DModel", "FluxTransformer2DModel", "GlmImageTransformer2DModel",
    "HiDreamImageTransformer2DModel", "HunyuanDiT2DModel", "HunyuanImageTransformer2DModel",
    "Ideogram4Transformer2DModel", "JoyImageEditPlusTransformer3DModel", "JoyImageEditTransformer3DModel",
    "Krea2Transformer2DModel", "LongCatImageTransformer2DModel", "Lumina2Transformer2DModel", "LuminaNextDiT2DModel",
    "NucleusMoEImageTransformer2DModel", "OmniGenTransformer2DModel", "OvisImageTransformer2DModel",
    "PRXTransformer2DModel", "PixArtTransformer2DModel", "QwenImage21Transformer2DModel",
    "QwenImageTransformer2DModel", "SD3Transformer2DModel", "SanaTransformer2DModel", "ZImageTransformer2DModel",
)
