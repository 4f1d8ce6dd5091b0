"""`SourceBank`: labelled mono clips that scenes are built from.

Banks come from a user folder (one subfolder per class), a CSV/TSV manifest, the Debian sound bank
(`hf_spatial.acoustics.debian`) or the procedural synthesiser (`hf_spatial.acoustics.procedural`). Every clip
is conditioned the same way (24 kHz mono, silence trimmed, loudness normalised; see `audio.prepare_clip`).

Train/test split is decided per clip by a hash of its `clip_id` alone, so it never depends on the order, the
seed or which other clips are present: a clip is in the test split in every bank that contains it.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hf_spatial.acoustics.audio import AUDIO_EXTENSIONS, load_clip, read_audio
from hf_spatial.conventions import SAMPLE_RATE

SPLITS = ("train", "test")
DEFAULT_TEST_FRACTION = 0.2
PROCEDURAL_LICENCE = "CC0-1.0"
PROCEDURAL_CLIPS_PER_CLASS = 10  # `procedural` alone; `procedural:N` asks for more


def clip_split(clip_id: str, test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """ "test" for a stable `test_fraction` of clip ids (by SHA-256), "train" for the others."""
    digest = hashlib.sha256(clip_id.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


@dataclass(frozen=True)
class Clip:
    """One source clip: identity, class, caption/transcript, provenance and the conditioned audio's length."""

    clip_id: str
    label: str
    duration: float  # seconds, after conditioning (trimmed, 24 kHz)
    split: str
    caption: str = ""
    licence: str = ""
    attribution: str = ""
    path: str | None = None  # audio file; None when the bank holds the audio in memory
    conditioned: bool = False  # the file already holds conditioned 24 kHz mono audio (e.g. the Debian cache)


class SourceBank:
    """A set of labelled clips with their conditioned audio, loaded lazily from files or held in memory.

    `description` says where the clips come from (e.g. "procedural(seed=0)"); it is recorded in dataset cards.
    """

    def __init__(self, clips: Iterable[Clip], description: str, audio: dict[str, np.ndarray] | None = None):
        self.clips: list[Clip] = sorted(clips, key=lambda clip: clip.clip_id)
        self.description = description
        self._audio: dict[str, np.ndarray] = dict(audio or {})
        self._by_id = {clip.clip_id: clip for clip in self.clips}
        if len(self._by_id) != len(self.clips):
            raise ValueError(f"Source bank {description}: clip ids must be unique.")

    # ------------------------------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.clips)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._by_id

    def __getitem__(self, clip_id: str) -> Clip:
        try:
            return self._by_id[clip_id]
        except KeyError:
            raise KeyError(f"Clip {clip_id!r} is not in the source bank {self.description}.") from None

    @property
    def labels(self) -> list[str]:
        return sorted({clip.label for clip in self.clips})

    def audio(self, clip_id: str) -> np.ndarray:
        """The conditioned 24 kHz mono float32 audio of a clip (loaded once, then cached)."""
        if clip_id not in self._audio:
            clip = self[clip_id]
            if clip.path is None:
                raise ValueError(f"Clip {clip_id!r} has neither in-memory audio nor a file path.")
            self._audio[clip_id] = read_audio(clip.path)[0][:, 0] if clip.conditioned else load_clip(clip.path)
        return self._audio[clip_id]

    @classmethod
    def union(cls, banks: Sequence[SourceBank]) -> SourceBank:
        """All the clips of `banks` (clip ids must not repeat); a class of several banks holds all their clips."""
        audio = {clip_id: samples for bank in banks for clip_id, samples in bank._audio.items()}
        clips = [clip for bank in banks for clip in bank.clips]
        return cls(clips, "+".join(bank.description for bank in banks), audio)

    # --------------------------------------------------------------------------------------- selection
    def _subset(self, clips: list[Clip], description: str) -> SourceBank:
        audio = {clip.clip_id: self._audio[clip.clip_id] for clip in clips if clip.clip_id in self._audio}
        return SourceBank(clips, description, audio)

    def split(self, split: str) -> SourceBank:
        """The clips of one split; error if the split is empty."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
        clips = [clip for clip in self.clips if clip.split == split]
        if not clips:
            raise ValueError(
                f"Source bank {self.description} has no {split} clips ({len(self.clips)} clips in all); "
                "add clips or set a `split` column in the manifest."
            )
        return self._subset(clips, f"{self.description}[{split}]")

    def filter(self, labels: Iterable[str]) -> SourceBank:
        """Only the clips of the given classes; error naming any class the bank does not have."""
        labels = list(labels)
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ValueError(
                f"Unknown class(es) {', '.join(map(repr, unknown))} in source bank {self.description}; "
                f"available: {', '.join(self.labels)}."
            )
        return self._subset([c for c in self.clips if c.label in labels], f"{self.description}[{','.join(labels)}]")

    def licences(self) -> dict[str, int]:
        """Clip count per licence (for dataset cards)."""
        counts: dict[str, int] = {}
        for clip in self.clips:
            counts[clip.licence or "unknown"] = counts.get(clip.licence or "unknown", 0) + 1
        return dict(sorted(counts.items()))

    # --------------------------------------------------------------------------------------- builders
    @classmethod
    def procedural(
        cls, seed: int = 0, clips_per_class: int = PROCEDURAL_CLIPS_PER_CLASS, labels: Iterable[str] | None = None
    ) -> SourceBank:
        """Synthesised clips (no files needed): `clips_per_class` per class of `procedural.SYNTHESISERS`."""
        from hf_spatial.acoustics import procedural

        labels = list(labels) if labels is not None else list(procedural.SYNTHESISERS)
        clips, audio = [], {}
        for label in labels:
            for index in range(clips_per_class):
                signal, caption = procedural.synthesise(label, index, seed)
                clip_id = f"procedural/{label}/{seed}/{index:04d}"
                clips.append(
                    Clip(
                        clip_id=clip_id,
                        label=label,
                        duration=len(signal) / SAMPLE_RATE,
                        split=clip_split(clip_id),
                        caption=caption,
                        licence=PROCEDURAL_LICENCE,
                        attribution=f"synthesised by hf-spatial (speech: {procedural.speech_engine()})",
                    )
                )
                audio[clip_id] = signal
        return cls(clips, f"procedural(seed={seed}, clips_per_class={clips_per_class})", audio)

    @classmethod
    def from_folder(cls, folder: str | Path, licence: str = "", attribution: str = "") -> SourceBank:
        """Clips from `folder/<class>/<file>` (wav, flac, ogg, ...), one subfolder per class."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"Source folder not found: {folder}")
        rows = [
            {"path": str(path), "label": path.parent.name, "clip_id": f"{folder.name}/{path.relative_to(folder)}"}
            for path in sorted(folder.glob("*/*"))
            if path.suffix.lower() in AUDIO_EXTENSIONS
        ]
        if not rows:
            raise ValueError(
                f"No audio files found in {folder}: expected {folder}/<class>/<clip>.wav (one subfolder per class; "
                f"extensions {', '.join(AUDIO_EXTENSIONS)})."
            )
        return cls._from_rows(rows, f"folder({folder})", licence, attribution)

    @classmethod
    def from_manifest(cls, manifest: str | Path) -> SourceBank:
        """Clips listed in a CSV/TSV file with columns `path` (relative to the manifest) and `label`, and optional
        `clip_id`, `caption`, `licence`, `attribution`, `split`."""
        manifest = Path(manifest)
        if not manifest.is_file():
            raise FileNotFoundError(f"Source manifest not found: {manifest}")
        with manifest.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t" if manifest.suffix.lower() == ".tsv" else ","))
        if not rows:
            raise ValueError(f"Source manifest {manifest} lists no clips.")
        missing = {"path", "label"} - set(rows[0])
        if missing:
            raise ValueError(
                f"Source manifest {manifest} lacks column(s) {sorted(missing)}; it has {sorted(rows[0])}. "
                "Required: path, label; optional: clip_id, caption, licence, attribution, split."
            )
        for row in rows:
            relative = row["path"]
            row["path"] = str((manifest.parent / relative).resolve())
            row["clip_id"] = (row.get("clip_id") or "").strip() or f"{manifest.stem}/{relative}"
        return cls._from_rows(rows, f"manifest({manifest})", "", "")

    @classmethod
    def _from_rows(cls, rows: list[dict], description: str, licence: str, attribution: str) -> SourceBank:
        """Load and condition every listed file now, so that bad files fail at bank creation, not mid-run."""
        clips, audio = [], {}
        for row in rows:
            signal = load_clip(row["path"])
            split = (row.get("split") or "").strip() or clip_split(row["clip_id"])
            if split not in SPLITS:
                raise ValueError(f"{description}: clip {row['clip_id']} has split {split!r}; expected {SPLITS}.")
            clips.append(
                Clip(
                    clip_id=row["clip_id"],
                    label=row["label"],
                    duration=len(signal) / SAMPLE_RATE,
                    split=split,
                    caption=row.get("caption") or "",
                    licence=row.get("licence") or licence,
                    attribution=row.get("attribution") or attribution,
                    path=row["path"],
                )
            )
            audio[row["clip_id"]] = signal
        return cls(clips, description, audio)

    @classmethod
    def debian(cls, cache_dir: str | Path | None = None, packages: str | Iterable[str] = "small") -> SourceBank:
        """Real recordings from Debian packages (fetched into `cache_dir` on first use; see `debian.fetch_debian`)."""
        from hf_spatial.acoustics.debian import load_debian_bank

        return load_debian_bank(cache_dir, packages)

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0, cache_dir: str | Path | None = None) -> SourceBank:
        """Build a bank from a command-line spec: `procedural` (or `procedural:N`, N clips per class), `debian`,
        `debian:all`, `debian:PKG,PKG`, a folder of class subfolders, or a .csv/.tsv manifest; `A+B` is the union of
        the banks A and B (e.g. `procedural+debian`)."""
        if "+" in spec:
            return cls.union([cls.from_spec(part, seed=seed, cache_dir=cache_dir) for part in spec.split("+")])
        if spec == "procedural" or spec.startswith("procedural:"):
            count = spec.partition(":")[2] or str(PROCEDURAL_CLIPS_PER_CLASS)
            if not count.isdigit() or int(count) < 1:
                raise ValueError(
                    f"Bad sources {spec!r}: write procedural:N with N clips per class, a positive integer."
                )
            return cls.procedural(seed=seed, clips_per_class=int(count))
        if spec == "debian" or spec.startswith("debian:"):
            packages = spec.partition(":")[2] or "small"
            return cls.debian(cache_dir, packages if packages in ("small", "all") else packages.split(","))
        path = Path(spec)
        if path.suffix.lower() in (".csv", ".tsv"):
            return cls.from_manifest(path)
        if path.is_dir():
            return cls.from_folder(path)
        raise ValueError(
            f"Unknown sources {spec!r}: use 'procedural[:N]', 'debian', 'debian:all', 'debian:PKG,...', a folder with "
            "one subfolder per class, a .csv/.tsv manifest, or several joined by '+'."
        )
