"""The one answer parser: which option letter a model's text chose, or None when it cannot be told.

Accepted forms: a bare letter ("B", "(B)", "B."), explicit statements ("The answer is B.", "Answer: (B)",
"option B"), `<answer>B</answer>` (whose content is parsed by the same rules), and the text of an option.
An explicit letter wins over option text; two different letters, or text matching two options, is ambiguous.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

Options = Sequence[str] | Mapping[str, str]

# Every pattern below runs in time linear in the text: quantifiers followed by what they could also match are
# possessive (`*+`), so a long run of spaces, newlines or digits is scanned once, not once per split point.
_OPEN_TAG = re.compile(r"<answer>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"</answer>", re.IGNORECASE)
_TOKEN = re.compile(r"-?\d+(?:\.\d+)?|[a-z]+")


def option_texts(options: Options | None) -> dict[str, str]:
    """Letter -> option text from a list (A, B, ... in order), a letter mapping, or a QA row (option_a...)."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        if "option_a" in options:
            return {
                letter: str(options[f"option_{letter.lower()}"])
                for letter in string.ascii_uppercase
                if f"option_{letter.lower()}" in options and options[f"option_{letter.lower()}"] is not None
            }
        return {str(letter).upper(): str(text) for letter, text in options.items()}
    return {letter: str(text) for letter, text in zip(string.ascii_uppercase, options, strict=False)}


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(text.lower()))


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    # Tokens hold no spaces, so a token sequence is a contiguous part of another exactly when its space-joined
    # text is a part of theirs on token boundaries (a substring search in C, linear in practice).
    return len(needle) > 0 and f" {' '.join(needle)} " in f" {' '.join(haystack)} "


def _letter_patterns(letters: str) -> list[re.Pattern[str]]:
    # Letters only in upper case: "the answer is a dog" must not read as option A.
    cls = f"[{letters}]"
    return [
        # "the answer is B", "Answer: (B)", "final answer = B", "option B", "choice [B]"
        re.compile(
            rf"\b(?i:answer|option|choice)\s*+(?:(?i:is|:|=|would be|should be)\s*+)?(?:(?i:option)\s*+)?"
            rf"[\(\[]?({cls})[\)\]]?(?![A-Za-z])"
        ),
        # "(B)" or "[B]" anywhere
        re.compile(rf"[\(\[]({cls})[\)\]]"),
        # "B." / "B)" / "B:" at the start of the text or of a line (after blank lines and indentation)
        re.compile(rf"^[^\S\n]*+({cls})\s*+[\.\):](?!\d)", re.MULTILINE),
    ]


def _parse_fragment(text: str, choices: dict[str, str]) -> str | None:
    letters = "".join(choices) if choices else "ABCD"
    stripped = text.strip()
    tokens = _tokens(stripped)
    # 1. The whole text is one option's text.
    exact = [letter for letter, option in choices.items() if tokens and _tokens(option) == tokens]
    if len(exact) == 1:
        return exact[0]
    # 2. A bare letter, possibly bracketed or punctuated.
    bare = re.fullmatch(rf"[\s\(\[\*\"']*+([{letters}{letters.lower()}])[\s\)\]\.\*:\"',!]*+", stripped)
    if bare:
        return bare.group(1).upper()
    # 3. Explicit letter statements; several different letters are ambiguous.
    found = {match.upper() for pattern in _letter_patterns(letters) for match in pattern.findall(stripped)}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        return None
    # 4. Option text mentioned; an option whose text lies inside another matched option does not count.
    mentioned = {letter: _tokens(option) for letter, option in choices.items() if _contains(tokens, _tokens(option))}
    maximal = [
        letter
        for letter, option_tokens in mentioned.items()
        if not any(
            other != letter and _contains(t, option_tokens) and t != option_tokens for other, t in mentioned.items()
        )
    ]
    return maximal[0] if len(maximal) == 1 else None


def completion_text(completion: Any) -> str:
    """Text of a completion: a string, a message dict, or a conversational list of messages (TRL)."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        content = completion.get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
        return "" if content is None else str(content)
    if isinstance(completion, Sequence):
        messages = [m for m in completion if isinstance(m, Mapping)]
        assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
        return "\n".join(completion_text(m) for m in assistant)
    return str(completion)


def parse_answer(text: Any, options: Options | None = None) -> str | None:
    """The option letter chosen in `text` (a string or a TRL completion), or None if absent or ambiguous.

    `options`: the option texts (list in A, B, C, D order, a letter mapping, or a QA row); without them only
    letters are recognised.
    """
    text = completion_text(text)
    choices = option_texts(options)
    tagged = _last_tagged(text)
    return _parse_fragment(text if tagged is None else tagged, choices)


def _last_tagged(text: str) -> str | None:
    """The content of the last `<answer>...</answer>` (tags paired left to right, the nearest closing tag after an
    opening one), or None without a complete pair. One pass over the text."""
    content, position = None, 0
    while (opening := _OPEN_TAG.search(text, position)) and (closing := _CLOSE_TAG.search(text, opening.end())):
        content, position = text[opening.end() : closing.start()], closing.end()
    return content
