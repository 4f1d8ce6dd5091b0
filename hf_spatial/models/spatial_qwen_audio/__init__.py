"""SpatialQwenAudio: Qwen2-Audio with a spatial FOA branch and a dense hybrid projector."""
