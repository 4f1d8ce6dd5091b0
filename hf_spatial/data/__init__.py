"""Dataset schema, shard writer and readers of external formats (DCASE SELD CSV, STARSS23, TWNM benchmark)."""

from hf_spatial.data.schema import read_foa

__all__ = ["read_foa"]
