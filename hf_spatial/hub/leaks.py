"""The leak scan run on every staging folder: access tokens and machine-local absolute paths in text files,
safetensors metadata and parquet strings. Tokens are never printed or written, only named."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from hf_spatial.hub.staged import PROCESSOR_FILES, is_license_file

TEXT_SUFFIXES = (".json", ".jsonl", ".md", ".txt", ".py", ".jinja", ".yaml", ".yml", ".csv", ".tsv")

HF_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")

# Absolute paths that only make sense on the machine that wrote them: home folders, temp folders, cluster mounts.
LOCAL_PATH_PATTERN = re.compile(
    r"(?<![\w.\-/])(?:/home/[^/\s\"'<>]+|/Users/[^/\s\"'<>]+|/root/|/tmp/|/private/var/|/var/folders/|/work/"
    r"|/scratch/|/mnt/|[A-Za-z]:\\{1,2}Users\\{1,2})"
)


def known_tokens(token: str | None = None) -> list[str]:
    """Token values that must never be written: the given one, HF_TOKEN-style variables and the login file."""
    from huggingface_hub import constants

    values = [token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    token_path = Path(constants.HF_TOKEN_PATH)
    if token_path.is_file():
        values.append(token_path.read_text(encoding="utf-8").strip())
    return sorted({value for value in values if value and len(value) >= 8})


def find_leaks(folder: Path, paths: Iterable[str], token: str | None = None) -> list[str]:
    """'file: what' for every token or machine-local absolute path found in the staged files' text."""
    secrets = known_tokens(token)
    local_roots = _local_roots()
    problems = []
    for rel in paths:
        for text in _texts(folder / rel):
            for secret in secrets:
                if secret in text:
                    problems.append(f"{rel}: contains an access token (the value of your HF token)")
            for match in HF_TOKEN_PATTERN.finditer(text):
                problems.append(f"{rel}: contains something shaped like an HF token ({match.group()[:5]}...)")
            for match in LOCAL_PATH_PATTERN.finditer(text):
                problems.append(f"{rel}: local path {_context(text, match.start())!r}")
            for root in local_roots:
                if root in text:
                    problems.append(f"{rel}: local path {_context(text, text.index(root))!r}")
    return list(dict.fromkeys(problems))


def _local_roots() -> list[str]:
    roots = {str(Path.home()), tempfile.gettempdir(), os.getcwd()}
    # Single-component roots such as "/" or "/srv" would match any path-like text.
    return sorted(root for root in roots if len(Path(root).parts) > 2)


def _texts(path: Path) -> Iterator[str]:
    """Text a file carries: the whole file for text formats, safetensors header metadata, parquet strings."""
    name = path.name
    if name.endswith(TEXT_SUFFIXES) or name in PROCESSOR_FILES or is_license_file(name):
        yield path.read_text(encoding="utf-8", errors="replace")
    elif name.endswith(".safetensors"):
        with path.open("rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            yield json.dumps(json.loads(handle.read(header_size)).get("__metadata__") or {})
    elif name.endswith(".parquet"):
        yield from _parquet_strings(path)


def _parquet_strings(path: Path) -> Iterator[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    yield (parquet.schema_arrow.metadata or {}).get(b"huggingface", b"").decode()
    for batch in parquet.iter_batches(batch_size=4096):
        for column in batch.columns:
            for array in _string_leaves(column):
                yield "\n".join(pc.drop_null(array).to_pylist())


def _string_leaves(array) -> Iterator:
    import pyarrow as pa

    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        yield array
    elif pa.types.is_struct(kind):
        for index in range(kind.num_fields):
            yield from _string_leaves(array.field(index))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        yield from _string_leaves(array.flatten())


def _context(text: str, start: int) -> str:
    return text[max(0, start - 10) : start + 50].replace("\n", " ")
