"""How a QA row is shown to a model: the question, lettered options, the answer instruction, and the tokens of an
answer after its chat prompt (training labels and evaluation log-likelihoods use the same ones)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hf_spatial.tasks.parsing import option_texts

ANSWER_INSTRUCTION = "Answer with the letter of the correct option."
# Answering with the option's words (parsed back to its letter by `parse_answer`): the answer then names what was
# heard, so a model needs no letter look-up to answer (the format for small language models trained from scratch).
TEXT_ANSWER_INSTRUCTION = "Answer with the text of the correct option."
# How a model is asked to answer, by answer format (training rows and evaluation prompts use the same wording).
ANSWER_INSTRUCTIONS = {"letter": ANSWER_INSTRUCTION, "text": TEXT_ANSWER_INSTRUCTION}
REASONING_INSTRUCTION = (
    "Think about where each sound is, then answer in the form <think>your reasoning</think><answer>X</answer>, "
    "where X is the letter of the correct option."
)


def answer_completion(item: Mapping[str, Any], letter: str, answer_format: str) -> str:
    """What a model asked in `answer_format` (a key of `ANSWER_INSTRUCTIONS`) writes to choose option `letter`."""
    if answer_format not in ANSWER_INSTRUCTIONS:
        raise ValueError(f"answer_format must be one of {tuple(ANSWER_INSTRUCTIONS)}, got {answer_format!r}.")
    return option_texts(item)[letter] if answer_format == "text" else letter


def format_prompt(item: Mapping[str, Any], instruction: str = ANSWER_INSTRUCTION) -> str:
    """'question\\nA. ...\\nB. ...\\nC. ...\\nD. ...\\ninstruction' for a QA row."""
    options = "\n".join(f"{letter}. {text}" for letter, text in option_texts(item).items())
    return f"{item['question']}\n{options}\n{instruction}"


def completion_token_ids(
    processor: Any, prompt: list[dict[str, Any]], prompt_text: str, completion: str | list[dict[str, Any]]
) -> list[int]:
    """Token ids of the assistant `completion` (end-of-turn included) as the chat template renders it after
    `prompt`, whose rendering with the generation prompt is `prompt_text`."""
    full_text = processor.apply_chat_template([prompt + _as_messages(completion)], tokenize=False)[0]
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "The chat template renders the prompt differently inside the full conversation, so the answer tokens "
            "cannot be located; use a template whose generation prompt is a prefix of the conversation."
        )
    return processor.tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]


def _as_messages(completion: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return list(completion)
