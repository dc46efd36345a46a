"""The activation store: a zarr (v3) group that plain ``xarray.open_zarr`` opens, with dit-lens's schema.

    schema   Layout, SCHEMA_VERSION, STATS, create (the template), open_group, read_layout, decode, uint8_images
    writer   StoreWriter: everything that writes arrays and chunks (the seam for another backend)
    reader   open_store, verify, and the ``ds.dit`` accessor (registered when this package is imported)

The schema, for people who open stores without dit-lens, is in stores/README.md.
"""

from ..errors import StoreError
from .reader import DitAccessor, open_store, verify
from .schema import SCHEMA_VERSION, STATS, Layout, create, decode, open_group, read_layout, uint8_images
from .writer import StoreWriter

__all__ = ["StoreError", "open_store", "verify", "DitAccessor", "SCHEMA_VERSION", "STATS", "Layout", "create",
           "decode", "open_group", "read_layout", "uint8_images", "StoreWriter"]
