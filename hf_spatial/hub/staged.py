"""What a staged Hub repo holds: the repo kinds, which files belong in a model repo, and `StagedRepo` (a staging
folder with what was left out and the checks that passed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("model", "dataset", "benchmark")

REPO_TYPE = {"model": "model", "dataset": "dataset", "benchmark": "dataset"}

# Model repo allow-list (top level of a `save_pretrained` / Trainer checkpoint folder).
MODEL_CONFIG_FILES = ("config.json", "generation_config.json", "adapter_config.json", "model.safetensors.index.json")

PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "feature_extractor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
)

# Files describing the training run: read for the card, never uploaded (they hold local paths and pickles).
TRAINING_STATE_FILES = {
    "trainer_state.json": "training state (read for the card)",
    "training_args.bin": "training state (pickle)",
    "optimizer.pt": "training state (pickle)",
    "scheduler.pt": "training state (pickle)",
    "scaler.pt": "training state (pickle)",
}

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")

AUDIO_SUFFIXES = (".flac", ".wav")


@dataclass
class StagedFile:
    """One file of a staging folder."""

    path: str  # relative to the staging folder, POSIX separators
    size: int


@dataclass
class StagedRepo:
    """A staging folder holding exactly what `upload` sends, with what was left out and why."""

    kind: str
    folder: Path
    files: list[StagedFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def repo_type(self) -> str:
        return REPO_TYPE[self.kind]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        """The file list with sizes, what was left out, and the validations that passed."""
        width = max(len(f.path) for f in self.files)
        lines = [f"{self.kind} repo staged in {self.folder} ({len(self.files)} files, {human_size(self.total_size)}):"]
        lines += [f"  {f.path:<{width}}  {human_size(f.size):>9}" for f in self.files]
        if self.skipped:
            lines.append("left out:")
            lines += [f"  {path}: {why}" for path, why in self.skipped]
        lines.append("checks passed:")
        lines += [f"  {check}" for check in self.checks]
        return "\n".join(lines)


def is_license_file(name: str) -> bool:
    """A licence or attribution file, which every repo keeps."""
    return name.upper().startswith(("LICENSE", "LICENCE", "NOTICE", "ATTRIBUTION"))


def human_size(size: int) -> str:
    """A byte count as B / KB / MB / GB."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
