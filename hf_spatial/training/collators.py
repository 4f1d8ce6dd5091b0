"""Batch collation for audio chat training: prompt with audio, assistant completion, loss on the completion only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_TEXT_KEYS = ("input_ids", "attention_mask")


@dataclass
class AudioChatCollator:
    """Collate rows `{prompt: messages, completion: messages, audio: cell}` into model inputs.

    The prompt (system + user turn with the audio placeholder, then the assistant header) is tokenised with the
    processor, which expands the audio placeholder and returns the audio tensors; the completion is tokenised
    as plain text and appended. `labels` are -100 on the prompt (text and audio tokens) and on padding, so the
    loss covers only the assistant answer and its end-of-turn token. A batch whose audio cells are all None is
    text only (prompts without the audio placeholder).
    """

    processor: Any
    decode_audio: Callable[[Any], np.ndarray]
    sampling_rate: int = 24000
    audio_column: str = "audio"
    max_length: int | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        cells = [row.get(self.audio_column) for row in rows]
        if any(cell is None for cell in cells) and not all(cell is None for cell in cells):
            raise ValueError("A batch mixes rows with and without audio; collate them separately.")
        prompts = [row["prompt"] for row in rows]
        conversations = [row["prompt"] + _as_messages(row["completion"]) for row in rows]
        prompt_texts = self.processor.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
        full_texts = self.processor.apply_chat_template(conversations, tokenize=False)
        audio = {}
        if cells[0] is not None:
            audio = {"audio": [self.decode_audio(cell) for cell in cells], "sampling_rate": self.sampling_rate}
        encoded = self.processor(text=prompt_texts, **audio, padding=True, return_tensors="pt")
        tokenizer = self.processor.tokenizer
        sequences, prompt_lengths = [], []
        for prompt_text, full_text, ids, mask in zip(
            prompt_texts, full_texts, encoded["input_ids"], encoded["attention_mask"], strict=True
        ):
            if not full_text.startswith(prompt_text):
                raise ValueError(
                    "The chat template renders the prompt differently inside the full conversation, so the answer "
                    "tokens cannot be located; use a template whose generation prompt is a prefix of the conversation."
                )
            prompt_ids = ids[mask.bool()].tolist()
            completion_ids = tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]
            sequence = prompt_ids + completion_ids
            if self.max_length is not None and len(sequence) > self.max_length:
                if len(prompt_ids) >= self.max_length:
                    raise ValueError(
                        f"A prompt with its audio tokens is {len(prompt_ids)} tokens long, over max_length "
                        f"{self.max_length}; raise max_length (audio is never truncated)."
                    )
                sequence = sequence[: self.max_length]
            sequences.append(sequence)
            prompt_lengths.append(len(prompt_ids))
        width = max(len(sequence) for sequence in sequences)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (sequence, prompt_length) in enumerate(zip(sequences, prompt_lengths, strict=True)):
            input_ids[i, : len(sequence)] = torch.tensor(sequence)
            attention_mask[i, : len(sequence)] = 1
            labels[i, prompt_length : len(sequence)] = input_ids[i, prompt_length : len(sequence)]
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        batch.update({key: value for key, value in encoded.items() if key not in _TEXT_KEYS})
        return batch


def _as_messages(completion: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return list(completion)
