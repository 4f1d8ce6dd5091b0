"""Pretrained starting points that install offline: Whisper converted from CTranslate2 wheels, and SpatialQwenAudio
models built on it (ARCHITECTURE.md, "Model")."""
