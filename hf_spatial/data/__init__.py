"""Dataset schema, shard writer and readers of external formats (DCASE SELD CSV, STARSS23, TWNM benchmark)."""
