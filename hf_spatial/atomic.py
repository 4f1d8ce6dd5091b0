"""Atomic writes: a reader (or a resumed job) never sees a half-written file or folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, written as is (no newline translation), atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any, sort_keys: bool = False) -> Path:
    """`data` as indented JSON with a final newline, atomically: the package's one JSON file writer."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """`path` as a folder to write: refused with a clear error when it, or a folder above it, is a file."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == path else f" ({candidate} is a file)"
                raise FileExistsError(
                    f"{flag} {path} is not a folder{where}; pass the path of a folder (it is created if missing)."
                )
            break
    return path


def staging_folder(path: str | os.PathLike) -> Path:
    """An empty hidden sibling of `path` to build a folder in before `publish_folder` (left-overs are removed)."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish_folder(staging: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the complete folder `staging` to `path`, replacing what is there. A kill at any instant leaves either the
    old folder or the new one at `path` (or none, when there was none), never a half-deleted mix: the old one is
    renamed aside first and removed last."""
    staging, path = Path(staging), Path(path)
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(staging, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a hidden sibling (yielded), then publish it at `path` (`publish_folder`): `path` is never
    half-written, and a failure leaves no partial folder. An existing non-empty `path` is an error unless
    `overwrite`."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; choose another folder or overwrite it")
    staging = staging_folder(path)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    publish_folder(staging, path)
