"""Chat-format rows for the language stages: captions (align), questions (SFT) and RL prompts (GRPO).

Every row keeps its `audio` cell; `prompt` is a user turn with the audio placeholder and the text, and
`completion` (align, SFT) the assistant answer. GRPO rows keep the QA columns that the rewards read.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.tasks import describe_scene, format_prompt
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.prompting import ANSWER_INSTRUCTIONS, REASONING_INSTRUCTION, answer_completion

ANSWER_FORMATS = tuple(ANSWER_INSTRUCTIONS)
GRPO_ANSWER_FORMATS = ("reasoning", *ANSWER_FORMATS)

CAPTION_INSTRUCTION = "Describe the sound scene: what you hear, where each sound is, how far away, and the room."


def user_turn(text: str) -> list[dict[str, Any]]:
    """A single user message holding the audio placeholder followed by `text`."""
    return [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": text}]}]


def caption_row(row: dict[str, Any]) -> dict[str, Any]:
    """Align-stage row: describe the scene of a simulated dataset row."""
    return {"prompt": user_turn(CAPTION_INSTRUCTION), "completion": describe_scene(SceneSpec.from_json(row["scene"]))}


def reasoned_answer(item: dict[str, Any]) -> str:
    """The GRPO answer format with the item's open answer as the short reasoning."""
    return f"<think>{item['open_answer']}</think><answer>{item['answer_letter']}</answer>"


def wants_reasoning(sample_id: str, fraction: float) -> bool:
    """Deterministic per-item choice of the reasoning format (same items at any seed, worker or resume)."""
    digest = hashlib.sha256(sample_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def sft_row(item: dict[str, Any], reasoning_fraction: float, answer_format: str = "letter") -> dict[str, Any]:
    """SFT row: the question with lettered options; the answer is reasoning + letter (`reasoning_fraction` of the
    items), else the letter (`answer_format="letter"`) or the gold option's text (`"text"`).

    A row answered without reasoning also holds every option's answer (`option_completions`, in option order) and
    the gold one's index (`answer_index`; -1 and no options for a reasoning row): the multiple-choice loss ranks
    them as likelihood scoring does."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}.")
    if wants_reasoning(item["sample_id"], reasoning_fraction):
        return {
            "prompt": user_turn(format_prompt(item, REASONING_INSTRUCTION)),
            "completion": reasoned_answer(item),
            "option_completions": [],
            "answer_index": -1,
        }
    letters = list(option_texts(item))
    return {
        "prompt": user_turn(format_prompt(item, ANSWER_INSTRUCTIONS[answer_format])),
        "completion": answer_completion(item, item["answer_letter"], answer_format),
        "option_completions": [answer_completion(item, letter, answer_format) for letter in letters],
        "answer_index": letters.index(item["answer_letter"]),
    }


def grpo_row(item: dict[str, Any], answer_format: str = "reasoning") -> dict[str, Any]:
    """GRPO row: the question asking for `reasoning` in the rewarded format, or for the answer as the SFT stage
    taught it (`letter`, `text`); the QA columns stay for the rewards."""
    if answer_format == "reasoning":
        return {"prompt": user_turn(format_prompt(item, REASONING_INSTRUCTION))}
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {GRPO_ANSWER_FORMATS}, got {answer_format!r}.")
    return {"prompt": user_turn(format_prompt(item, ANSWER_INSTRUCTIONS[answer_format]))}
