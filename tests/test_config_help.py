"""Every field a trainer or stage config adds (or re-defaults) is documented, as TRL documents its own: the help
is what `hf-spatial train STAGE --help` prints."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

from transformers import TrainingArguments

import hf_spatial.training


def config_classes() -> list[type]:
    """The training configs defined in hf_spatial.training and the mixins (its own dataclasses) they are built of."""
    found = set()
    for info in pkgutil.iter_modules(hf_spatial.training.__path__):
        module = importlib.import_module(f"hf_spatial.training.{info.name}")
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, TrainingArguments):
                found |= {
                    base
                    for base in value.__mro__
                    if base.__module__.startswith("hf_spatial.") and dataclasses.is_dataclass(base)
                }
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def test_the_walk_finds_every_stage_config():
    names = {cls.__name__ for cls in config_classes()}
    assert names >= {
        "EncoderTrainingConfig",
        "AlignConfig",
        "SpatialSFTConfig",
        "SpatialGRPOConfig",
        "StageDataArguments",
        "LoraArguments",
    }


def test_every_own_config_field_has_help():
    missing = []
    for cls in config_classes():
        own = inspect.get_annotations(cls)
        missing += [
            f"{cls.__name__}.{field.name}"
            for field in dataclasses.fields(cls)
            if field.name in own and not field.metadata.get("help")
        ]
    assert missing == []
