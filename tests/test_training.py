"""The curriculum stages run real optimiser steps on a tiny model and tiny simulated data, and learn."""

from __future__ import annotations

import io
import json
import time

import datasets
import numpy as np
import pytest
import torch
import trl
from transformers import TrainerControl, TrainerState, TrainingArguments, get_constant_schedule_with_warmup

from hf_spatial.data.folders import load_folder
from hf_spatial.training.audio_grpo import SUPPORTED_TRL_VERSION, AudioGRPOTrainer, check_trl_version
from hf_spatial.training.budget import TimeBudgetCallback
from hf_spatial.training.chat_data import grpo_row, sft_row, wants_reasoning
from hf_spatial.training.common import dataset_labels, logged_metrics
from hf_spatial.training.grpo import SpatialGRPOConfig
from hf_spatial.training.stages import load_config, run_stage
from tests.conftest import run_cli

STEPS = ["--max_steps", "3", "--logging_steps", "1", "--save_steps", "2", "--report_to", "none"]


@pytest.fixture(scope="module")
def encoder_dir(scenes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "encoder"
    run_stage("encoder", "tiny", ["--dataset_dir", str(scenes_dir), "--output_dir", str(out), *STEPS])
    return out


def _parameters(path):
    from transformers import AutoModelForMultimodalLM

    model = AutoModelForMultimodalLM.from_pretrained(path)
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


def test_encoder_stage_trains_only_the_spatial_encoder_and_records_itself(encoder_dir, scenes_dir):
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    labels = dataset_labels(load_folder(scenes_dir, "train"))
    initial, _ = build_tiny_spatial_qwen_audio(class_names=labels)  # the stage's starting point (seed 0)
    before = {name: parameter.detach().clone() for name, parameter in initial.named_parameters()}
    after = _parameters(encoder_dir)
    changed = _changed(before, after)
    assert changed and all(".spatial_encoder." in f".{name}" for name in changed)
    history = json.loads((encoder_dir / "training_stages.json").read_text())
    assert [stage["stage"] for stage in history["stages"]] == ["encoder"]
    assert "eval_loss" in history["stages"][0]["metrics"]
    seld = json.loads((encoder_dir / "seld" / "seld_metrics_2024.json").read_text())
    assert {"f_score", "doa_error", "relative_distance_error"} <= set(seld["metrics"])


def test_encoder_loss_on_a_fixed_batch_goes_down(scenes_dir):
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
    from hf_spatial.training.encoder import SeldCollator
    from hf_spatial.training.seld_targets import slot_loss

    train = load_folder(scenes_dir, "train")
    labels = dataset_labels(train)
    model, processor = build_tiny_spatial_qwen_audio(class_names=labels)
    batch = SeldCollator(processor.feature_extractor, labels, 3)([train[i] for i in range(4)])
    targets = {key.removeprefix("target_"): value for key, value in batch.items() if key.startswith("target_")}
    optimiser = torch.optim.Adam(model.model.spatial_encoder.parameters(), lr=1e-3)
    model.eval()  # no dropout: the same batch gives the same loss until the weights change
    losses = []
    for _ in range(25):
        outputs = model.get_spatial_outputs(batch["spatial_features"], batch["spatial_attention_mask"])
        loss, _ = slot_loss(outputs, targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_augmenting_collator_moves_audio_and_direction_targets_by_one_rule(scenes_dir):
    from hf_spatial.data import read_foa
    from hf_spatial.models.tiny import build_tiny_processor
    from hf_spatial.training.augmentation import sample_transform
    from hf_spatial.training.encoder import SeldCollator

    train = load_folder(scenes_dir, "train")
    rows, labels = [train[i] for i in range(4)], dataset_labels(train)
    extractor = build_tiny_processor(window_seconds=2).feature_extractor
    plain = SeldCollator(extractor, labels, 3)(rows)
    augmented = SeldCollator(extractor, labels, 3, augmentation="rotation")
    torch.manual_seed(5)
    first, second = augmented(rows), augmented(rows)
    torch.manual_seed(5)  # the first batch's transforms, as the collator draws them
    rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,))))
    transforms = [sample_transform("rotation", rng) for _ in rows]
    expected = extractor([t.apply_foa(read_foa(r["audio"])) for t, r in zip(transforms, rows, strict=True)], 24000)
    np.testing.assert_array_equal(first["spatial_features"].numpy(), expected["spatial_features"])
    for index, transform in enumerate(transforms):
        moved = transform.apply_vectors(plain["target_direction"][index].numpy())
        np.testing.assert_allclose(first["target_direction"][index].numpy(), moved, atol=1e-6)
    assert not torch.equal(first["target_direction"], plain["target_direction"])
    assert not torch.equal(first["target_direction"], second["target_direction"])  # a new draw per batch
    for key in ("target_presence", "target_class_index", "target_activity", "target_distance"):
        assert torch.equal(first[key], plain[key])  # only directions move


def test_a_rerun_resumes_from_the_last_checkpoint(scenes_dir, tmp_path):
    out = tmp_path / "encoder"
    common = ["--dataset_dir", str(scenes_dir), "--output_dir", str(out), "--save_steps", "2", "--report_to", "none"]
    run_stage("encoder", "tiny", [*common, "--max_steps", "2"])
    assert (out / "checkpoint-2").is_dir()
    result = run_cli("train", "--stage", "encoder", *common, "--max_steps", "4", "--eval_strategy", "no")
    assert f"resuming from {out / 'checkpoint-2'}" in result.stderr
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_align_trains_only_the_projectors(encoder_dir, scenes_dir, tmp_path):
    out = run_stage(
        "align",
        "tiny",
        [
            "--model_name_or_path",
            str(encoder_dir),
            "--dataset_dir",
            str(scenes_dir),
            "--output_dir",
            str(tmp_path / "a"),
            *STEPS,
        ],
    )
    changed = _changed(_parameters(encoder_dir), _parameters(out))
    assert {name.split(".")[1] for name in changed} == {"multi_modal_projector", "spatial_projector"}


def test_align_can_train_a_from_scratch_language_model_too(encoder_dir, scenes_dir, tmp_path):
    common = ["--model_name_or_path", str(encoder_dir), "--dataset_dir", str(scenes_dir), *STEPS]
    out = run_stage("align", "tiny", [*common, "--output_dir", str(tmp_path), "--train_language_model", "true"])
    changed = _changed(_parameters(encoder_dir), _parameters(out))
    modules = {name.split(".")[1] if name.startswith("model.") else name.split(".")[0] for name in changed}
    assert modules == {"multi_modal_projector", "spatial_projector", "language_model", "lm_head"}


def test_sft_trains_lora_and_projectors_and_saves_adapter_and_merged_model(encoder_dir, questions_dir, tmp_path):
    from peft import PeftConfig

    out = run_stage(
        "sft",
        "tiny",
        [
            "--model_name_or_path",
            str(encoder_dir),
            "--dataset_dir",
            str(questions_dir),
            "--output_dir",
            str(tmp_path),
            *STEPS,
        ],
    )
    changed = _changed(_parameters(encoder_dir), _parameters(out))
    modules = {name.split(".")[1] for name in changed}
    assert modules == {"multi_modal_projector", "spatial_projector", "language_model"}
    assert all("_proj" in name for name in changed if ".language_model." in name)
    adapter = PeftConfig.from_pretrained(out / "adapter")
    assert adapter.r == 8 and adapter.lora_alpha == 32


def test_sft_without_lora_trains_the_whole_language_model(encoder_dir, questions_dir, tmp_path):
    common = ["--model_name_or_path", str(encoder_dir), "--dataset_dir", str(questions_dir), *STEPS]
    out = run_stage("sft", "tiny", [*common, "--output_dir", str(tmp_path / "full"), "--lora_r", "0"])
    changed = _changed(_parameters(encoder_dir), _parameters(out))
    modules = {name.split(".")[1] if name.startswith("model.") else name.split(".")[0] for name in changed}
    assert modules == {"multi_modal_projector", "spatial_projector", "language_model", "lm_head"}
    assert {"lm_head.weight", "model.language_model.embed_tokens.weight"} <= changed
    assert not (out / "adapter").exists()
    with pytest.raises(ValueError, match="lora_r"):
        load_config("sft", "tiny", [*common, "--lora_r", "-1"])


def test_question_stages_train_on_the_tasks_asked_for(questions_dir):
    from hf_spatial.training.common import keep_tasks
    from hf_spatial.training.stages import _language_splits

    common = ["--dataset_dir", str(questions_dir), "--eval_split", "none"]
    args = load_config("sft", "tiny", [*common, "--tasks", "l1_direction_sector", "l2"])
    train, _ = _language_splits(args, "sft", args.tasks)
    every_task = set(load_folder(questions_dir, "train")["task"])
    wanted = {"l1_direction_sector"} | {task for task in every_task if task.startswith("l2_")}
    assert set(train["task"]) == wanted and len(wanted) > 1
    assert load_config("grpo", "tiny", [*common, "--tasks", "l1"]).tasks == ["l1"]
    with pytest.raises(ValueError, match="Unknown task 'l9'"):
        _language_splits(args, "sft", ["l9"])
    with pytest.raises(ValueError, match=r"sector rows has no rows of the tasks .*l3_navigation"):
        keep_tasks(train, ["l3_navigation"], "sector rows")


def test_sft_rows_answer_with_the_letter_or_the_option_text():
    from hf_spatial.tasks.parsing import parse_answer
    from hf_spatial.tasks.prompting import ANSWER_INSTRUCTION, REASONING_INSTRUCTION, TEXT_ANSWER_INSTRUCTION

    item = {"sample_id": "s-l1_direction_sector", "question": "Where is the bell relative to you?",
            "option_a": "to your left", "option_b": "behind you", "option_c": "in front of you",
            "option_d": "to your right", "answer_letter": "B", "answer_text": "behind you"}  # fmt: skip
    letter, text = sft_row(item, 0.0), sft_row(item, 0.0, answer_format="text")
    assert letter["completion"] == "B" and ANSWER_INSTRUCTION in letter["prompt"][0]["content"][1]["text"]
    assert text["completion"] == "behind you" and TEXT_ANSWER_INSTRUCTION in text["prompt"][0]["content"][1]["text"]
    assert parse_answer(text["completion"], item) == "B"
    with pytest.raises(ValueError, match="answer_format"):
        sft_row(item, 0.0, answer_format="json")
    # GRPO asks as the SFT stage taught, or for reasoning in the format reward's form.
    prompt = {fmt: grpo_row(item, fmt)["prompt"][0]["content"][1]["text"] for fmt in ("reasoning", "letter", "text")}
    assert REASONING_INSTRUCTION in prompt["reasoning"]
    assert TEXT_ANSWER_INSTRUCTION in prompt["text"] and ANSWER_INSTRUCTION in prompt["letter"]
    assert REASONING_INSTRUCTION not in prompt["text"] and grpo_row(item) == grpo_row(item, "reasoning")
    with pytest.raises(ValueError, match="answer_format"):
        grpo_row(item, "json")


def test_sft_rows_mask_the_prompt_and_answer_in_both_formats(questions_dir):
    from hf_spatial.data import read_foa
    from hf_spatial.models.tiny import build_tiny_processor
    from hf_spatial.training.collators import AudioChatCollator

    items = list(load_folder(questions_dir, "train").select(range(8)))
    rows = [{**item, **sft_row(item, reasoning_fraction=0.5)} for item in items]
    assert {row["completion"].startswith("<think>") for row in rows} == {True, False}
    assert all(
        wants_reasoning(i["sample_id"], 0.5) == r["completion"].startswith("<think>")
        for i, r in zip(items, rows, strict=False)
    )
    processor = build_tiny_processor()
    batch = AudioChatCollator(processor, read_foa)(rows)
    for row, ids, labels in zip(rows, batch["input_ids"], batch["labels"], strict=True):
        answer = processor.tokenizer.decode(ids[labels != -100])
        assert answer.startswith(row["completion"]) and answer.rstrip().endswith("<|im_end|>")
        assert not (labels[ids == processor.audio_token_id] != -100).any()


@pytest.mark.parametrize("lora_r", [0, 4])
def test_sft_loss_scores_only_answer_positions_and_equals_trls(encoder_dir, questions_dir, tmp_path, lora_r):
    from trl import SFTTrainer

    from hf_spatial.training.common import load_model_and_processor
    from hf_spatial.training.language_stages import SpatialSFTTrainer

    args = load_config("sft", "tiny", ["--dataset_dir", str(questions_dir), "--output_dir", str(tmp_path),
                                       "--lora_r", str(lora_r), "--report_to", "none"])  # fmt: skip
    model, processor = load_model_and_processor(str(encoder_dir))
    rows = [{**item, **sft_row(item, 0.5)} for item in load_folder(questions_dir, "train").select(range(6))]
    trainer = SpatialSFTTrainer(model, args, processor, train_dataset=datasets.Dataset.from_list(rows))
    trainer.model.train()
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    assert (batch["labels"] != -100).sum() < 0.3 * batch["labels"].numel()  # mostly audio and prompt positions

    losses, grads, metrics = [], [], []
    for compute_loss in (trainer.compute_loss, lambda *a, **k: SFTTrainer.compute_loss(trainer, *a, **k)):
        trainer.model.zero_grad()
        torch.manual_seed(0)  # the same dropout masks
        loss = compute_loss(trainer.model, dict(batch))
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        metrics.append({key: values.pop() for key, values in trainer._metrics["train"].items() if key != "num_tokens"})
    assert losses[0] == pytest.approx(losses[1], rel=1e-5) and losses[0] > 0
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-6, msg=name)
    assert metrics[0] == pytest.approx(metrics[1], rel=1e-4)


def test_choice_loss_ranks_options_as_likelihood_scoring_does(encoder_dir, questions_dir, tmp_path):
    from hf_spatial.data import read_foa
    from hf_spatial.evaluation.controls import Request
    from hf_spatial.evaluation.predictors import ModelPredictor
    from hf_spatial.tasks.parsing import option_texts
    from hf_spatial.tasks.vocabulary import label_phrase
    from hf_spatial.training.common import load_model_and_processor
    from hf_spatial.training.language_stages import (
        OPTION_KEYS,
        SpatialSFTTrainer,
        forward_with_options,
        with_encoder_outputs,
    )

    args = load_config("sft", "tiny", ["--dataset_dir", str(questions_dir), "--output_dir", str(tmp_path),
                                       "--lora_r", "0", "--answer_format", "text", "--choice_loss_weight", "1",
                                       "--report_to", "none"])  # fmt: skip
    model, processor = load_model_and_processor(str(encoder_dir))
    # Names grounded, with trained-like weights: the options' names must read their clip's detections as in scoring.
    model.config.spatial_name_token_ids = processor.name_token_ids(
        [label_phrase(name) for name in model.config.spatial_class_names]
    )
    with torch.no_grad():
        model.model.spatial_projector.name_grounding[-1].weight.normal_(generator=torch.Generator().manual_seed(0))
    items = list(load_folder(questions_dir, "train").select(range(6)))
    rows = [{**item, **sft_row(item, 0.0, "text")} for item in items]
    trainer = SpatialSFTTrainer(model, args, processor, train_dataset=datasets.Dataset.from_list(rows))
    trainer.model.eval()  # no dropout: the same numbers as the predictor
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    labels, options = batch.pop("labels"), {key: batch.pop(key) for key in OPTION_KEYS}
    with torch.no_grad():
        _, scores = forward_with_options(trainer.model, with_encoder_outputs(trainer.model, batch), labels, options)

    predictor = ModelPredictor("tiny", model=trainer.model, processor=processor, answer_format="text",
                               scoring="likelihood")  # fmt: skip
    requests = [Request(item, read_foa(item["audio"]), None, "full") for item in items]
    expected = predictor.option_log_likelihoods(requests)
    assert any(name in row["question"] + " ".join(row["option_completions"]) for row in rows
               for name in map(label_phrase, model.config.spatial_class_names))  # fmt: skip
    for row, item, item_scores, scored in zip(rows, items, scores, expected, strict=True):
        assert list(scored) == list(option_texts(item)) and row["answer_index"] == list(scored).index(
            item["answer_letter"]
        )
        torch.testing.assert_close(item_scores[: len(scored)], torch.tensor(list(scored.values())), atol=1e-4, rtol=0)
        assert torch.isinf(item_scores[len(scored) :]).all()

    # In training the loss adds the options' cross-entropy and logs how often the gold option ranks first.
    trainer.model.train()
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grounding = trainer.model.model.spatial_projector.name_grounding[0].weight.grad
    assert grounding is not None and grounding.abs().sum() > 0
    logged = trainer._metrics["train"]
    assert logged["choice_loss"][-1] > 0 and 0 <= logged["choice_accuracy"][-1] <= 1
    with pytest.raises(ValueError, match="choice_loss_weight"):
        SpatialSFTTrainer(model, load_config("sft", "tiny", ["--dataset_dir", str(questions_dir), "--output_dir",
                          str(tmp_path), "--choice_loss_weight", "1", "--loss_type", "dft"]), processor,
                          train_dataset=datasets.Dataset.from_list(rows))  # fmt: skip


# ------------------------------------------------------------------------------------------------- GRPO
def test_grpo_extension_is_pinned_to_the_checked_trl_version():
    assert trl.__version__.startswith(SUPPORTED_TRL_VERSION + "."), (
        f"TRL {trl.__version__} is installed; AudioGRPOTrainer overrides private GRPOTrainer methods checked against "
        f"{SUPPORTED_TRL_VERSION}. Re-check the overrides, then update SUPPORTED_TRL_VERSION."
    )
    check_trl_version()
    with pytest.raises(RuntimeError, match="re-check the overrides"):
        check_trl_version("1.17.0")


def _length_reward(completions, **kwargs):
    # Varies between completions, so GRPO advantages (and gradients) are non-zero.
    from hf_spatial.tasks.parsing import completion_text

    return [len(completion_text(completion)) % 7 / 6 for completion in completions]


@pytest.fixture
def grpo_setup(encoder_dir, questions_dir, tmp_path):
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    model = AutoModelForMultimodalLM.from_pretrained(encoder_dir)
    # The projector output is zero at initialisation (step-0 equivalence); give it weights so that the spatial
    # branch changes the logits and its presence in each forward is observable.
    torch.manual_seed(0)
    torch.nn.init.normal_(model.model.spatial_projector.output.weight, std=0.5)
    model.config.image_token_id = model.config.audio_token_id
    processor = AutoProcessor.from_pretrained(encoder_dir)
    dataset = load_folder(questions_dir, "train").select(range(4)).map(grpo_row)
    return model, processor, dataset, tmp_path


def _grpo_config(tmp_path, beta: float) -> SpatialGRPOConfig:
    return load_config(
        "grpo",
        "tiny",
        [
            "--dataset_dir", "unused", "--output_dir", str(tmp_path), "--max_steps", "2", "--beta", str(beta),
            "--per_device_train_batch_size", "4", "--num_generations", "2", "--max_completion_length", "12",
            "--learning_rate", "0.01", "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1",
            "--reward_weights", "1.0",
        ],
    )  # fmt: skip


@pytest.mark.parametrize("beta", [0.0, 0.1])
def test_grpo_audio_reaches_generation_and_every_log_prob_forward(grpo_setup, beta):
    model, processor, dataset, tmp_path = grpo_setup
    args = _grpo_config(tmp_path, beta)
    trainer = AudioGRPOTrainer(
        model=model,
        args=args,
        processing_class=processor,
        reward_funcs=_length_reward,
        train_dataset=dataset,
        peft_config=args.lora_config(),
    )
    encoder_inputs = []
    trainer.model.base_model.model.model.spatial_encoder.register_forward_pre_hook(
        lambda module, inputs: encoder_inputs.append(inputs[0].abs().sum().item())
    )
    generate_kwargs = []
    original_generate = trainer.model.generate
    trainer.model.generate = lambda *a, **kw: generate_kwargs.append(set(kw)) or original_generate(*a, **kw)
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}

    trainer.train()

    assert generate_kwargs and all({"spatial_features", "input_features"} <= keys for keys in generate_kwargs)
    # Per step: generation (prefill), the policy loss forward, and with beta > 0 the reference forward.
    per_step = 2 + (beta > 0)
    assert len(encoder_inputs) >= args.max_steps * per_step
    assert all(total > 0 for total in encoder_inputs)  # real FOA features, never dropped or zeroed
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(lora_before[name], after[name]) for name in lora_before)


def test_grpo_log_probs_depend_on_the_spatial_features(grpo_setup):
    model, processor, dataset, tmp_path = grpo_setup
    trainer = AudioGRPOTrainer(
        model=model, args=_grpo_config(tmp_path, 0.0), processing_class=processor, reward_funcs=_length_reward,
        train_dataset=dataset,
    )  # fmt: skip
    batch = trainer._generate_and_score_completions(list(dataset))
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    audio = {key: batch[key] for key in trainer._audio_keys}
    assert {"input_features", "spatial_features"} <= set(audio)

    def log_probs(audio_inputs):
        with torch.no_grad(), trainer._audio_inputs_for(audio_inputs):
            return trainer._get_per_token_logps_and_entropies(model, input_ids, mask, batch["completion_ids"].shape[1])[
                0
            ]

    with_space = log_probs(audio)
    without = log_probs({**audio, "spatial_features": torch.zeros_like(audio["spatial_features"])})
    assert not torch.allclose(with_space, without)
    with trainer._audio_inputs_for(None), pytest.raises(RuntimeError, match="audio tensors of this batch were lost"):
        trainer._get_per_token_logps_and_entropies(model, input_ids, mask, 4)


def test_spatial_grpo_rewards_come_from_the_question_metadata(encoder_dir, questions_dir, tmp_path, monkeypatch):
    from hf_spatial.tasks import rewards
    from hf_spatial.tasks.prompting import TEXT_ANSWER_INSTRUCTION

    seen = {}
    original = rewards.accuracy_reward

    def recording_accuracy(prompts, completions, **kwargs):
        seen.update(kwargs, prompts=prompts)
        return original(prompts, completions, **kwargs)

    recording_accuracy.__name__ = "accuracy_reward"
    monkeypatch.setattr(rewards, "accuracy_reward", recording_accuracy)
    out = run_stage(
        "grpo",
        "tiny",
        [
            "--model_name_or_path",
            str(encoder_dir),
            "--dataset_dir",
            str(questions_dir),
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "1",
            "--max_train_samples",
            "4",
            "--max_completion_length",
            "8",
            "--answer_format",
            "text",
            "--report_to",
            "none",
        ],
    )
    assert all(TEXT_ANSWER_INSTRUCTION in str(prompt) for prompt in seen["prompts"])  # asked as SFT taught
    items = {item["sample_id"]: item for item in load_folder(questions_dir, "train").select(range(4))}
    assert set(seen["sample_id"]) <= set(items)
    for sample_id, letter, evidence in zip(seen["sample_id"], seen["answer_letter"], seen["evidence"], strict=True):
        assert letter == items[sample_id]["answer_letter"] and json.loads(evidence) == json.loads(
            items[sample_id]["evidence"]
        )
    assert (out / "adapter" / "adapter_config.json").is_file()


def test_stage_metrics_keep_the_last_periodic_log_over_the_closing_summary():
    # As TRL's GRPO logs when a time budget stops it one step after a periodic log: the summary carries that step's
    # rewards (here none right), which must not replace the logged window's.
    history = [
        {"loss": 0.01, "rewards/accuracy_reward/mean": 0.29, "frac_reward_zero_std": 0.5, "step": 250},
        {"loss": 0.02, "rewards/accuracy_reward/mean": 0.36, "frac_reward_zero_std": 0.32, "step": 275},
        {
            "train_runtime": 42.3,
            "train_loss": 0.005,
            "rewards/accuracy_reward/mean": 0.0,
            "frac_reward_zero_std": 1.0,
            "step": 277,
        },
    ]
    metrics = logged_metrics(history)
    assert metrics["rewards/accuracy_reward/mean"] == 0.36 and metrics["frac_reward_zero_std"] == 0.32
    assert metrics["train_runtime"] == 42.3 and metrics["train_loss"] == 0.005 and metrics["step"] == 275
    assert logged_metrics([{"train_runtime": 1.0, "train_loss": 0.5}]) == {"train_runtime": 1.0, "train_loss": 0.5}


def test_stage_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="Unknown encoder config keys: learning_rat"):
        load_config("encoder", bad)
    with pytest.raises(ValueError, match="needs `dataset_dir`"):
        load_config("encoder", "tiny")
    with pytest.raises(ValueError, match="Unknown stage"):
        load_config("pretrain", "tiny")
    result = run_cli("train", "--stage", "sft", "--config", str(tmp_path / "missing.yaml"), check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_outputs_load_with_the_auto_classes(encoder_dir):
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    model = AutoModelForMultimodalLM.from_pretrained(encoder_dir)
    processor = AutoProcessor.from_pretrained(encoder_dir)
    foa = np.random.default_rng(0).standard_normal((4, 24000)).astype(np.float32) * 0.1
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Where?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, audio=foa, sampling_rate=24000, return_tensors="pt")
    assert model.generate(**inputs, max_new_tokens=3).shape[1] > inputs["input_ids"].shape[1]


def test_a_stage_publishes_its_output_when_asked(scenes_dir, tmp_path, monkeypatch):
    import hf_spatial.hub

    pushed = []
    monkeypatch.setattr(
        hf_spatial.hub.transfer, "push_checkpoint", lambda folder, repo_id, private: pushed.append((folder, repo_id))
    )
    out = run_stage(
        "encoder",
        "tiny",
        ["--dataset_dir", str(scenes_dir), "--output_dir", str(tmp_path), "--max_steps", "1", "--report_to", "none",
         "--eval_split", "none", "--publish_repo_id", "alice/spatial-encoder"],
    )  # fmt: skip
    assert pushed == [(out, "alice/spatial-encoder")]


def test_a_time_budget_decays_the_learning_rate_to_zero_at_its_deadline():
    def scheduler():
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return optimizer, get_constant_schedule_with_warmup(optimizer, num_warmup_steps=2)

    args, state, control = TrainingArguments(output_dir="unused", report_to=[]), TrainerState(), TrainerControl()
    budget = TimeBudgetCallback(100.0, decay_lr=True)
    optimizer, schedule = scheduler()
    budget.on_train_begin(args, state, control, lr_scheduler=schedule)
    rates = []
    for spent in (0.0, 25.0, 50.0, 100.0, 150.0):
        budget.spent_seconds, budget._started = spent, time.monotonic()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    # warm-up (step 1 of 2) times the clock, then the constant rate times the share of the budget left
    assert rates == pytest.approx([0.05, 0.075, 0.05, 0.0, 0.0], abs=1e-4)
    torch.save(schedule.state_dict(), io.BytesIO())  # checkpoints hold no clock
    assert budget.state()["args"] == {"seconds": 100.0, "decay_lr": True}  # a resumed run decays too
    plain = TimeBudgetCallback(100.0)
    optimizer, schedule = scheduler()
    plain.on_train_begin(args, state, control, lr_scheduler=schedule)
    schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # without decay_lr the schedule is untouched
    with pytest.raises(ValueError, match="LambdaLR"):
        budget.on_train_begin(args, state, control, lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1))
