"""For tests/test_distributed.py: run `hf-spatial` commands in one process (under `accelerate launch`, each rank runs
them) and record, in RECORD_DIR, what each rank trained on and the weights it ended with.

    accelerate launch ... -m tests.ddp_probe RECORD_DIR train --stage align ... --then train --stage sft ...

For each training run (named by its output folder) and rank R: `NAME-rankR.json`, with `batches`, the rows
(`sample_id`, or `scene_id` for scene captions) of every batch the rank collated or generated for, in order, and
`embedded`, how many clips the rank stored in the embedding cache; `NAME-rankR.pt`, the rank's model state dict when
training ended (before a LoRA stage merges its adapter).

The tiny random model earns no ASA reward, so GRPO's advantages would all be zero and its weights would never move;
the probe swaps the format reward for one that varies with the completion's length, so that they do.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import torch

from hf_spatial.cli import main
from hf_spatial.models.audio_cache import AudioEmbeddingCache
from hf_spatial.tasks import rewards
from hf_spatial.tasks.parsing import completion_text
from hf_spatial.training import stages
from hf_spatial.training.audio_grpo import AudioGRPOTrainer
from hf_spatial.training.collators import AudioChatCollator

SEPARATOR = "--then"
_seen: dict = {"batches": [], "embedded": 0}


def _row_ids(rows) -> list[str]:
    return [row.get("sample_id") or row["scene_id"] for row in rows]


def _recording(original):
    @functools.wraps(original)
    def record(self, rows, *args, **kwargs):
        _seen["batches"].append(_row_ids(rows))
        return original(self, rows, *args, **kwargs)

    return record


def length_reward(completions, **kwargs):
    return [len(completion_text(completion)) % 7 / 6 for completion in completions]


def _counting(original):
    @functools.wraps(original)
    def put(self, entries):
        _seen["embedded"] += len(entries)
        return original(self, entries)

    return put


def install(record_dir: Path) -> None:
    AudioEmbeddingCache.put = _counting(AudioEmbeddingCache.put)
    AudioChatCollator.__call__ = _recording(AudioChatCollator.__call__)
    AudioGRPOTrainer._generate_and_score_completions = _recording(AudioGRPOTrainer._generate_and_score_completions)
    rewards.format_reward = length_reward
    original = stages.train_resuming

    @functools.wraps(original)
    def train_and_record(trainer) -> None:
        original(trainer)
        name = f"{Path(trainer.args.output_dir).name}-rank{int(os.environ.get('RANK', 0))}"
        model = trainer.accelerator.unwrap_model(trainer.model)
        torch.save(
            {key: value.detach().clone() for key, value in model.state_dict().items()}, record_dir / f"{name}.pt"
        )
        (record_dir / f"{name}.json").write_text(json.dumps(_seen))
        _seen.update(batches=[], embedded=0)

    stages.train_resuming = train_and_record


def commands(argv: list[str]) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    for word in argv:
        if word == SEPARATOR:
            groups.append([])
        else:
            groups[-1].append(word)
    return groups


if __name__ == "__main__":
    record = Path(sys.argv[1])
    record.mkdir(parents=True, exist_ok=True)
    install(record)
    for command in commands(sys.argv[2:]):
        if main(command) != 0:
            sys.exit(1)
