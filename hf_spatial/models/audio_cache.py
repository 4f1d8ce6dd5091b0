"""Audio embedding cache: each clip's audio-encoder outputs, computed once and read by every later forward.

After the encoder stage both audio encoders are frozen (align, SFT, GRPO, evaluation), yet every step would run
the Whisper encoder and the spatial encoder again on the same clips. The cache stores, per clip, what the projectors
read (`SpatialAudioEncoderOutput`: Whisper hidden states at the clip's audio tokens, the spatial map, its pooled
output and the ACCDOA map) in safetensors shards, memory-mapped on read.

Keys and staleness:
- A clip's key is a hash of its samples as the model hears them (`clip_key`), so a transformed clip (the mono or
  rotated evaluation controls) is another clip, and the same clip stored twice is one.
- Entries live in `ROOT/<fingerprint>/`, where the fingerprint hashes the encoders' weights, the config fields
  that shape their outputs and the feature-extractor settings. A model whose encoders or features differ in any
  way reads and writes another folder: stale numbers can never be served; the old folder is simply not used
  (delete it to reclaim the space).
- Shards are written whole (temporary file, then rename) and named by the keys they hold, so a killed `embed`
  leaves only complete shards and a re-run writes the missing ones to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from hf_spatial.atomic import write_bytes_atomic, write_json_atomic
from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import AUDIO_ENCODER_OUTPUT_KEYS

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: entries hold the slots' detections (`spatial_clip_accdoa`)
MANIFEST_FILE = "cache.json"
KEY_COLUMN = "audio_key"  # the column a cached dataset gets: each row's clip key
# Per-clip tensors (the token axis first where there is one); `audio_token_lengths` is their length.
_PER_CLIP = (
    "audio_hidden_states",
    "spatial_hidden_states",
    "spatial_pooled_output",
    "spatial_token_accdoa",
    "spatial_clip_accdoa",
)
_TOKEN_AXIS = ("audio_hidden_states", "spatial_hidden_states", "spatial_token_accdoa")


def clip_key(foa: np.ndarray) -> str:
    """The cache key of a clip: a hash of its float32 samples and shape (what the feature extractor is given)."""
    samples = np.ascontiguousarray(foa, dtype=np.float32)
    digest = hashlib.sha256(repr(samples.shape).encode())
    digest.update(samples.data)
    return digest.hexdigest()[:32]


def encoder_fingerprint(model: Any, feature_extractor: Any) -> str:
    """A hash of everything that determines a clip's encoder outputs: the audio encoders' weights (names, dtypes,
    shapes and values), the audio and spatial config fields, and the feature extractor's settings."""
    backbone = audio_backbone(model)
    digest = hashlib.sha256(f"hf-spatial audio cache {CACHE_FORMAT}".encode())
    for module_name in ("audio_tower", "spatial_encoder"):
        for name, tensor in getattr(backbone, module_name).state_dict().items():
            digest.update(f"{module_name}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().data)
    config = backbone.config
    settings = {
        "audio_config": _without_metadata(config.audio_config.to_dict()),
        "spatial": {key: value for key, value in config.to_dict().items() if key.startswith("spatial_")},
        "feature_extractor": _without_metadata(feature_extractor.to_dict()),
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


# Saved alongside settings but not settings: the weights' dtype is hashed with the weights themselves.
_METADATA_KEYS = {"dtype", "torch_dtype", "transformers_version", "_name_or_path", "processor_class", "auto_map"}


def _without_metadata(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key not in _METADATA_KEYS}


def audio_backbone(model: Any) -> Any:
    """The SpatialQwenAudioModel inside `model` (itself, a ForConditionalGeneration, or a PEFT/accelerate wrapper)."""
    candidate = model
    for _ in range(4):
        if hasattr(candidate, "encode_audio"):
            return candidate
        candidate = getattr(candidate, "module", None) or getattr(candidate, "model", None)
    raise TypeError(f"{type(model).__name__} has no SpatialQwenAudio audio encoders to cache.")


def audio_encoders_frozen(model: Any) -> bool:
    """True when no parameter of the Whisper encoder or the spatial encoder is trainable."""
    backbone = audio_backbone(model)
    return not any(p.requires_grad for m in (backbone.audio_tower, backbone.spatial_encoder) for p in m.parameters())


@contextmanager
def _both_branches(config: Any) -> Iterator[None]:
    """Compute both branches whatever the controls say: the cache holds the encoders' outputs, and the controls
    (`set_audio_branches`) act downstream, when the projectors read them."""
    flags = config.drop_semantic_branch, config.zero_spatial_branch
    config.drop_semantic_branch = config.zero_spatial_branch = False
    try:
        yield
    finally:
        config.drop_semantic_branch, config.zero_spatial_branch = flags


@torch.no_grad()
def encode_clips(
    model: Any, feature_extractor: Any, clips: Sequence[np.ndarray], sampling_rate: int = SAMPLE_RATE
) -> list[dict[str, torch.Tensor]]:
    """Per clip, the audio encoders' outputs cut to its audio tokens (the cache's entries), computed in one batch."""
    backbone = audio_backbone(model)
    device = next(backbone.parameters()).device
    features = feature_extractor(list(clips), sampling_rate=sampling_rate, return_tensors="pt")
    was_training = backbone.training
    backbone.eval()
    try:
        with _both_branches(backbone.config):
            encoded = backbone.encode_audio(
                input_features=features["input_features"].to(device),
                feature_attention_mask=features["feature_attention_mask"].to(device),
                spatial_features=features["spatial_features"].to(device),
                spatial_attention_mask=features["spatial_attention_mask"].to(device),
            )
    finally:
        backbone.train(was_training)
    entries = []
    for index, length in enumerate(encoded.audio_token_lengths.tolist()):
        entry = {}
        for name in _PER_CLIP:
            value = getattr(encoded, name)[index]
            entry[name] = (value[:length] if name in _TOKEN_AXIS else value).detach().cpu().contiguous()
        entries.append(entry)
    return entries


class AudioEmbeddingCache:
    """The cached encoder outputs of one model (one fingerprint) under `root`; see the module docstring.

    Open it for a model with `AudioEmbeddingCache.for_model(root, model, feature_extractor)`; `update` computes and
    stores the clips it lacks, `batch(keys)` returns the model inputs (the fields of `SpatialAudioEncoderOutput`) of
    a batch of clips, zero-padded to its longest clip. `root=None` keeps the entries in memory only.
    """

    def __init__(self, folder: str | os.PathLike | None, fingerprint: str):
        self.folder = Path(folder) if folder is not None else None
        self.fingerprint = fingerprint
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self._shard_of: dict[str, Path] = {}
        self._handles: dict[Path, Any] = {}
        if self.folder is not None:
            self._check_manifest()
            for shard in sorted(self.folder.glob("shard-*.safetensors")):
                with safe_open(str(shard), framework="pt") as handle:
                    for name in handle.keys():  # noqa: SIM118 (a safetensors handle is not a dict)
                        self._shard_of[name.split("/")[0]] = shard

    @classmethod
    def for_model(cls, root: str | os.PathLike | None, model: Any, feature_extractor: Any) -> AudioEmbeddingCache:
        """The cache of `model`'s encoders with `feature_extractor`'s settings under `root` (None: in memory)."""
        fingerprint = encoder_fingerprint(model, feature_extractor)
        folder = Path(root) / fingerprint[:16] if root is not None else None
        return cls(folder, fingerprint)

    def _check_manifest(self) -> None:
        manifest = self.folder / MANIFEST_FILE
        expected = {"format": CACHE_FORMAT, "fingerprint": self.fingerprint}
        if manifest.is_file():
            found = json.loads(manifest.read_text(encoding="utf-8"))
            if {key: found.get(key) for key in expected} != expected:
                raise ValueError(
                    f"{self.folder} holds audio embeddings of other encoders (fingerprint {found.get('fingerprint')}, "
                    f"format {found.get('format')}); this model's are {self.fingerprint}, format {CACHE_FORMAT}. "
                    "Delete the folder or give the cache another root."
                )
        else:
            write_json_atomic(manifest, expected)

    def __len__(self) -> int:
        return len(self._shard_of) + len(self._memory)

    def __contains__(self, key: str) -> bool:
        return key in self._memory or key in self._shard_of

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The distinct `keys` not in the cache, in first-seen order."""
        return [key for key in dict.fromkeys(keys) if key not in self]

    def get(self, key: str) -> dict[str, torch.Tensor]:
        """The entry of one clip (tensors cut to its audio tokens)."""
        if key in self._memory:
            return self._memory[key]
        shard = self._shard_of.get(key)
        if shard is None:
            raise KeyError(f"clip {key} is not in the audio embedding cache {self.folder or '(memory)'}; embed it")
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = safe_open(str(shard), framework="pt")
        return {name: handle.get_tensor(f"{key}/{name}") for name in _PER_CLIP}

    def put(self, entries: dict[str, dict[str, torch.Tensor]]) -> None:
        """Store entries: one new shard in a folder cache (named by its keys), else in memory."""
        if not entries:
            return
        if self.folder is None:
            self._memory.update(entries)
            return
        keys = sorted(entries)
        shard = self.folder / f"shard-{hashlib.sha256(' '.join(keys).encode()).hexdigest()[:20]}.safetensors"
        tensors = {f"{key}/{name}": entries[key][name] for key in keys for name in _PER_CLIP}
        write_bytes_atomic(shard, save_safetensors(tensors, metadata={"fingerprint": self.fingerprint}))
        self._shard_of.update(dict.fromkeys(keys, shard))

    def update(
        self,
        model: Any,
        feature_extractor: Any,
        clips: Iterable[tuple[str, np.ndarray]],
        batch_size: int = 8,
        shard_size: int = 256,
    ) -> int:
        """Compute and store the clips (`(key, foa)` pairs) the cache lacks, `shard_size` clips a shard; returns
        how many were added. Each shard is stored as soon as it is complete."""
        pending: dict[str, dict[str, torch.Tensor]] = {}
        batch: dict[str, np.ndarray] = {}
        added = 0

        def flush_batch() -> None:
            pending.update(zip(batch, encode_clips(model, feature_extractor, list(batch.values())), strict=True))
            batch.clear()

        for key, foa in clips:
            if key in self or key in pending or key in batch:
                continue
            batch[key] = foa
            if len(batch) == batch_size:
                flush_batch()
            if len(pending) + len(batch) >= shard_size:
                if batch:
                    flush_batch()
                added += len(pending)
                self.put(pending)
                pending = {}
        if batch:
            flush_batch()
        added += len(pending)
        self.put(pending)
        return added

    def batch(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """Model inputs for the clips `keys`, in order: each tensor zero-padded on the token axis to the longest."""
        entries = [self.get(key) for key in keys]
        lengths = [entry["audio_hidden_states"].shape[0] for entry in entries]
        width = max(lengths)
        inputs = {"audio_token_lengths": torch.tensor(lengths, dtype=torch.long)}
        for name in _PER_CLIP:
            values = [entry[name] for entry in entries]
            if name in _TOKEN_AXIS:
                padded = values[0].new_zeros(len(values), width, *values[0].shape[1:])
                for row, value in enumerate(values):
                    padded[row, : value.shape[0]] = value
                inputs[name] = padded
            else:
                inputs[name] = torch.stack(values)
        return {name: inputs[name] for name in AUDIO_ENCODER_OUTPUT_KEYS}


__all__ = [
    "KEY_COLUMN",
    "AudioEmbeddingCache",
    "audio_backbone",
    "audio_encoders_frozen",
    "clip_key",
    "encode_clips",
    "encoder_fingerprint",
]


# ------------------------------------------------------------------------------------------------ datasets
# Clip key of each audio cell seen in this process, by a hash of the cell's bytes: the stages of one run (the demo)
# key the same clips, and only the first decodes them.
_KEY_OF_CELL: dict[bytes, str] = {}


def _cell_identity(data: Any) -> bytes:
    """What identifies an encoded clip: for FLAC with its STREAMINFO block (stream format and length, and the MD5 of
    the decoded samples, which libFLAC writes) those 42 bytes, so that a QA set's many copies of each scene are
    recognised without reading them whole; for anything else a hash of all its bytes."""
    head = memoryview(data)[:42].tobytes()
    if head[:4] == b"fLaC" and head[4] & 0x7F == 0 and any(head[26:42]):
        return head
    return hashlib.sha256(data).digest()


def clip_keys(dataset: Any, audio_column: str = "audio") -> list[str]:
    """Each row's clip key (its `KEY_COLUMN` when it has one). Each distinct audio cell is decoded once (the
    questions of one scene share theirs); the cells are hashed straight from the Arrow buffers."""
    from tqdm.auto import tqdm

    from hf_spatial.data import read_foa

    if KEY_COLUMN in dataset.column_names:
        return dataset[KEY_COLUMN]
    keys = []
    batches = dataset.select_columns([audio_column]).with_format("arrow").iter(batch_size=64)
    with tqdm(total=len(dataset), desc="clip keys", unit="row", leave=False) as bar:
        for batch in batches:
            cells = batch.column(audio_column).combine_chunks()
            for data, path in zip(cells.field("bytes"), cells.field("path"), strict=True):
                buffer = data.as_buffer() if data.is_valid else None
                digest = _cell_identity(buffer) if buffer is not None else str(path).encode()
                if digest not in _KEY_OF_CELL:
                    cell = {"bytes": buffer.to_pybytes() if buffer is not None else None, "path": path.as_py()}
                    _KEY_OF_CELL[digest] = clip_key(read_foa(cell))
                keys.append(_KEY_OF_CELL[digest])
            bar.update(len(cells))
    return keys


def embed_dataset(
    cache: AudioEmbeddingCache,
    model: Any,
    feature_extractor: Any,
    dataset: Any,
    audio_column: str = "audio",
    batch_size: int = 8,
    shard_size: int = 256,
    keep_audio: bool = True,
) -> Any:
    """Store the encoder outputs of every clip of `dataset` that `cache` lacks; returns the dataset with its clip
    keys (`KEY_COLUMN`), and without its audio column for `keep_audio=False` (keyed rows need none). Resumable:
    complete shards are kept, so a re-run computes only what is missing."""
    from tqdm.auto import tqdm

    from hf_spatial.data import read_foa

    keys = clip_keys(dataset, audio_column)
    first_row = {key: row for row, key in reversed(list(enumerate(keys)))}
    missing = cache.missing(keys)
    if missing:
        logger.info("embedding %d of %d clips into %s", len(missing), len(first_row), cache.folder or "memory")
        bar = tqdm(total=len(missing), desc="embed", unit="clip")

        def clips() -> Iterator[tuple[str, np.ndarray]]:
            for key in missing:
                yield key, read_foa(dataset[first_row[key]][audio_column])
                bar.update(1)

        cache.update(model, feature_extractor, clips(), batch_size=batch_size, shard_size=shard_size)
        bar.close()
    # The audio goes before the keys come: on a filtered dataset (an index mapping) `add_column` first writes a flat
    # copy of every column, and a question set's audio column is most of its bytes.
    keyed = dataset if keep_audio else dataset.remove_columns(audio_column)
    return keyed if KEY_COLUMN in keyed.column_names else keyed.add_column(KEY_COLUMN, keys)
