"""Model folders in the transformers single-model-folder layout."""
