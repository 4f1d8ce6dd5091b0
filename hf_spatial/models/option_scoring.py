"""Multiple-choice answers scored by likelihood: each option's answer tokens continued from its prompt's key/value
cache. Evaluation ranks options with it (`ModelPredictor`), and the SFT stage's multiple-choice loss trains on the
same numbers."""

from __future__ import annotations

from typing import Any

import torch

from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import CACHE_KWARG


def pad_option_answers(answers: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(option_ids, option_mask)`: the options' answer token ids right-padded into one `(options, longest)` batch."""
    width = max((len(ids) for ids in answers), default=1)
    option_ids = torch.zeros((len(answers), width), dtype=torch.long)
    option_mask = torch.zeros_like(option_ids)
    for row, ids in enumerate(answers):
        option_ids[row, : len(ids)] = torch.tensor(ids)
        option_mask[row, : len(ids)] = 1
    return option_ids, option_mask


def option_answer_log_likelihoods(
    model: Any,
    cache: Any,
    prompt_mask: torch.Tensor,
    first_logits: torch.Tensor,
    owner: torch.Tensor,
    option_ids: torch.Tensor,
    option_mask: torch.Tensor,
    clip_accdoa: torch.Tensor | None = None,
) -> torch.Tensor:
    """`(options,)`: the log-probability of each option's answer tokens (`option_ids`, right-padded, `option_mask`)
    after the prompt of batch row `owner[i]`.

    `cache` is the prompts' key/value cache (its rows are selected in place), `prompt_mask` `(prompts, length)` marks
    the prompt tokens in it (each prompt's positions counted from 0 over its own tokens), `first_logits`
    `(options, vocab)` are the logits that predict each option's first token (the prompt's last position). With
    `clip_accdoa` (each prompt's clip detections), names in the answers are grounded as in the prompt."""
    cache.batch_select_indices(owner)
    grounding = {} if clip_accdoa is None else {"spatial_clip_accdoa": clip_accdoa[owner]}
    width = option_ids.shape[1]
    continued = model(
        input_ids=option_ids,
        attention_mask=torch.cat([prompt_mask[owner], option_mask], dim=-1),
        position_ids=prompt_mask.sum(-1)[owner, None] + torch.arange(width, device=option_ids.device),
        **{CACHE_KWARG: cache},
        **grounding,
    )
    # The prompt's last position predicts an option's first token; each option position the next one.
    logits = torch.cat([first_logits[:, None], continued.logits[:, :-1]], dim=1).float()
    token_log_probs = logits.log_softmax(-1).gather(-1, option_ids[..., None]).squeeze(-1)
    return (token_log_probs * option_mask).sum(-1)
