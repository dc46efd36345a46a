"""The embedded model: a small Flux-architecture text-to-image DiT trained on procedural shapes, shipped with its
weights, registered with dit-lens as the model spec "tiny" (``Lens("tiny")``).

    data       procedural shapes with exact ground truth          pipeline   the diffusers pipeline and its weights
    evaluate   scores images against their prompts                 spec       the registered spec and its Scorer
    train      seeded, resumable training                          demo       ``dit-lens demo``: the whole chain
    quality    quality and channel report of weights files         page       the demo's report page

Nothing outside this package imports it; the lens, the store and the recipes reach it only through the spec
registry (dit_lens.models).
"""

__all__: list = []
