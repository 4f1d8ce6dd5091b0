"""Batch collation for audio chat training: prompt with audio, assistant completion, loss on the completion only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.models.audio_cache import KEY_COLUMN, AudioEmbeddingCache
from hf_spatial.models.option_scoring import pad_option_answers
from hf_spatial.tasks.prompting import completion_token_ids

_TEXT_KEYS = ("input_ids", "attention_mask")


@dataclass
class AudioChatCollator:
    """Collate rows `{prompt: messages, completion: messages, audio: cell}` into model inputs.

    The prompt (system + user turn with the audio placeholder, then the assistant header) is tokenised with the
    processor, which expands the audio placeholder and returns the audio tensors; the completion is tokenised
    as plain text and appended. `labels` are -100 on the prompt (text and audio tokens) and on padding, so the
    loss covers only the assistant answer and its end-of-turn token.

    With an `embedding_cache`, rows name their clip by `audio_key` and the batch carries the cached audio-encoder
    outputs instead of audio features (nothing is decoded; the encoders do not run).

    With `options`, rows holding `option_completions` (see `chat_data.sft_row`) also give every option's answer
    tokens, for the multiple-choice loss: `option_ids`/`option_mask` (one right-padded row per option),
    `option_row` (the batch row it answers), `option_slot` (its place among that row's options) and `answer_slot`
    (per batch row, the gold option's place, -1 for a row without options).
    """

    processor: Any
    decode_audio: Callable[[Any], np.ndarray]
    sampling_rate: int = SAMPLE_RATE
    audio_column: str = "audio"
    max_length: int | None = None
    embedding_cache: AudioEmbeddingCache | None = None
    options: bool = False

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        prompts = [row["prompt"] for row in rows]
        prompt_texts = self.processor.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
        encoded = audio_prompt_inputs(
            self.processor,
            prompt_texts,
            rows,
            decode_audio=self.decode_audio,
            sampling_rate=self.sampling_rate,
            audio_column=self.audio_column,
            embedding_cache=self.embedding_cache,
        )
        tokenizer = self.processor.tokenizer
        sequences, prompt_lengths = [], []
        for row, prompt_text, ids, mask in zip(
            rows, prompt_texts, encoded["input_ids"], encoded["attention_mask"], strict=True
        ):
            prompt_ids = ids[mask.bool()].tolist()
            sequence = prompt_ids + completion_token_ids(self.processor, row["prompt"], prompt_text, row["completion"])
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
        if self.options:
            batch.update(self._option_tokens(rows, prompt_texts))
        return batch

    def _option_tokens(self, rows: list[dict[str, Any]], prompt_texts: list[str]) -> dict[str, torch.Tensor]:
        answers, owners, slots = [], [], []
        for index, (row, prompt_text) in enumerate(zip(rows, prompt_texts, strict=True)):
            completions = row.get("option_completions") or []
            for completion in completions:
                answers.append(completion_token_ids(self.processor, row["prompt"], prompt_text, completion))
            owners += [index] * len(completions)
            slots += range(len(completions))
        option_ids, option_mask = pad_option_answers(answers)
        return {
            "option_ids": option_ids,
            "option_mask": option_mask,
            "option_row": torch.tensor(owners, dtype=torch.long),
            "option_slot": torch.tensor(slots, dtype=torch.long),
            "answer_slot": torch.tensor([row.get("answer_index", -1) for row in rows], dtype=torch.long),
        }


def audio_prompt_inputs(
    processor: Any,
    texts: list[str],
    rows: list[dict[str, Any]],
    *,
    decode_audio: Callable[[Any], np.ndarray],
    sampling_rate: int,
    audio_column: str,
    embedding_cache: AudioEmbeddingCache | None,
) -> dict[str, torch.Tensor]:
    """The processor's right-padded batch of `texts`, each with its row's clip: audio features decoded from
    `audio_column`, or with an `embedding_cache` the cached encoder outputs of the rows' `audio_key`s."""
    if embedding_cache is None:
        audios = [decode_audio(row[audio_column]) for row in rows]
        return processor(text=texts, audio=audios, sampling_rate=sampling_rate, padding=True, return_tensors="pt")
    audio_inputs = embedding_cache.batch([row[KEY_COLUMN] for row in rows])
    encoded = processor(
        text=texts, audio_token_lengths=audio_inputs["audio_token_lengths"], padding=True, return_tensors="pt"
    )
    return {**encoded, **audio_inputs}
