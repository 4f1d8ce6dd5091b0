"""hf-spatial: spatial hearing (First-Order Ambisonics) for Hugging Face audio-language models."""

__version__ = "0.1.0"
