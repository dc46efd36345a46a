"""Random-weight pipelines built from configs (no hub, no text encoders), for tests and benchmarks.

    ROWS                 contract rows: id -> Row (a pipeline class, a tiny transformer config and the call that
                         drives it), at least one per supported architecture
    IMAGE_ROWS           image-conditioned pipelines (img2img, inpainting, editing) of Flux, SD3, Qwen-Image, FLUX.2
    Row.build(batch=2)   -> (pipeline, kwargs): the pipeline has its transformer and scheduler only; ``kwargs``
                         drive it with precomputed text embeddings and ``output_type="latent"`` (the embedded
                         model's row: prompts and images), so a denoising loop runs in milliseconds
    lens(row_id)         -> (Lens, kwargs) of a row, validated with a one-step call of those kwargs
    s3_server(bucket)    a loopback S3 server (moto) in its own process, pausable with SIGSTOP: (process, fsspec
                         storage options) -- for tests and benchmarks of object storage
    medium_flux(batch, size)   a Flux of moderate size (width 384, 4 + 8 blocks) for CPU benchmarks
    flux_dev(batch, device)    a transformer of Flux.1-dev's configuration in bf16 at 1024 x 1024 (GPU benchmarks)

Adding an architecture = its file in dit_lens/archs/ + one row here; tests/test_contract.py runs the shared contract
on every row, with the CFG style each row's arguments select by the adapter's own rule.
"""

from __future__ import annotations

from ._bench_models import flux_dev, medium_flux
from ._image_rows import IMAGE_ROWS
from ._image_rows import ROWS as _IMAGE_ROWS
from ._row import Row
from ._servers import s3_server
from ._video_rows import VIDEO_ROWS

__all__ = ["Row", "ROWS", "IMAGE_ROWS", "VIDEO_ROWS", "lens", "s3_server", "medium_flux", "flux_dev"]

ROWS = {**_IMAGE_ROWS, **VIDEO_ROWS}  # every contract row: image and video DiTs


def lens(row: str, batch: int = 2):
    """The row's pipeline under a Lens, validated with a one-step call of the row's own arguments; and those
    arguments."""
    from ..lens import Lens

    pipe, kw = (ROWS[row] if row in ROWS else IMAGE_ROWS[row]).build(batch)
    return Lens(pipe, example=dict(kw, num_inference_steps=1)), kw
