"""`AudioGRPOTrainer` overrides private `GRPOTrainer` methods: this fails when TRL changes their shape, before a
training run silently drops the audio."""

from __future__ import annotations

import inspect

import pytest
from trl import GRPOTrainer

from hf_spatial.training import audio_grpo
from hf_spatial.training.audio_grpo import OVERRIDDEN_TRL_SIGNATURES, AudioGRPOTrainer


def test_every_private_override_is_recorded():
    overridden = {
        name
        for name, value in vars(AudioGRPOTrainer).items()
        if name.startswith("_") and not name.startswith("__") and callable(value) and hasattr(GRPOTrainer, name)
    }
    assert overridden == set(OVERRIDDEN_TRL_SIGNATURES)


@pytest.mark.parametrize("name", sorted(OVERRIDDEN_TRL_SIGNATURES))
def test_trl_private_method_keeps_its_recorded_signature(name):
    assert str(inspect.signature(getattr(GRPOTrainer, name))) == OVERRIDDEN_TRL_SIGNATURES[name], (
        f"TRL's GRPOTrainer.{name} changed shape; re-read it and update AudioGRPOTrainer and the record."
    )


def test_each_override_names_its_trl_origin():
    source = inspect.getsource(audio_grpo)
    for name in OVERRIDDEN_TRL_SIGNATURES:
        assert f"trl/trainer/grpo_trainer.py GRPOTrainer.{name}" in source
