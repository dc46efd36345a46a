"""Video DiTs: tokens on a (frames, rows, cols) grid, in names' shapes, in stores and in recipes. Every video adapter
also passes the shared contract (tests/test_contract.py) and the support checks (record, detect) on its row."""

from __future__ import annotations

import numpy as np
import pytest

from dit_lens import Lens, cluster, detect, record
from dit_lens.errors import DitLensError
from dit_lens.store import open_store
from dit_lens.testing import ROWS
from dit_lens.testing import lens as row_lens

VIDEO_ROWS = sorted(k for k in ROWS if ROWS[k].transformer.endswith("3DModel"))


def test_every_video_row_measures_its_grid_from_the_latent_video():
    """5 frames of 32 x 64 pixels: 2 latent frames of 4 x 8 (Mochi: 7 frames at 6x, LTX: 32x spatial and 8x
    temporal compression), patched per the model's own config."""
    expected = {"wan": (2, 2, 4), "wan_nocfg": (2, 2, 4), "cogvideox": (3, 2, 4), "hunyuanvideo": (2, 4, 8),
                "ltx_video": (2, 2, 4), "mochi": (2, 2, 4), "sana_video": (2, 2, 4)}
    assert set(VIDEO_ROWS) == set(expected)
    for key in VIDEO_ROWS:
        lens, kw = row_lens(key)
        assert lens.token_grid() == expected[key], key
        assert lens.img_tokens == int(np.prod(expected[key])), key


def test_a_video_store_has_a_frame_axis_and_recipes_read_it(tmp_path):
    lens, kw = row_lens("wan_nocfg")
    url = record(lens, str(tmp_path / "v.zarr"), ["a", "b"], names="blocks.*.img.resid_post", num_inference_steps=2,
                 progress=False, **kw)
    ds = open_store(url)
    frames, rows, cols = lens.token_grid()
    idx = ds.img_token.values
    assert (ds.token_frame.values == idx // (rows * cols)).all()
    assert (ds.token_row.values == idx // cols % rows).all() and (ds.token_col.values == idx % cols).all()
    grid = ds.dit.grid(ds.dit.sel("blocks.1.img.resid_post"))
    assert dict(grid.sizes) == {"sample": 2, "step": 2, "token_frame": 2, "token_row": 2, "token_col": 4,
                                     "channel": 24}
    # (frame 1, row 0, col 3) is token 1 * 8 + 0 * 4 + 3
    assert np.array_equal(grid.isel(token_frame=1, token_row=0, token_col=3).values,
                          ds.dit.sel("blocks.1.img.resid_post").isel(img_token=11).values)
    assert len(detect(url, k=2).per_name["blocks.1.img.resid_post"]["top"]) == 2
    c = cluster(url, k=2)
    labels = next(iter(c.labels.values()))
    assert labels.shape == (2, frames * rows, cols)  # frames stacked along the rows


def test_wan_22_two_expert_pipelines_are_refused_when_loaded():
    pipe, kw = ROWS["wan"].build()
    pipe.register_modules(transformer_2=ROWS["wan"].build()[0].transformer)
    with pytest.raises(DitLensError, match="transformer_2.*low-noise expert"):
        Lens(pipe, example=dict(kw, num_inference_steps=1))
