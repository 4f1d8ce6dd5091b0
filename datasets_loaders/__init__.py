"""Dataset builders: how the `datasets` library sees hf-spatial data (see README.md here)."""
