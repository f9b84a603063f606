"""Store and catalog contracts: the one place their names, types and versions are defined."""

from saldata.schemas.catalog import IMAGES, STATUS_DONE, STATUS_FAILED, TABLES, TOKENS
from saldata.schemas.store import ARRAY_SPECS, ARRAYS, STORE_SCHEMA_VERSION, Geometry

__all__ = [
    "ARRAYS",
    "ARRAY_SPECS",
    "IMAGES",
    "STATUS_DONE",
    "STATUS_FAILED",
    "STORE_SCHEMA_VERSION",
    "TABLES",
    "TOKENS",
    "Geometry",
]
