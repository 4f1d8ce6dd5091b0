"""`hf-spatial demo` at its smallest setting: every step runs for real, the report folder is complete, the model
loads with the Auto classes, a re-run resumes, and the plan and sources are chosen as documented."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hf_spatial import demo
from hf_spatial.demo.plan import STAGE_OVERHEAD_SECONDS
from hf_spatial.demo.steps import training_stage
from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import name_token_mask
from hf_spatial.tasks.vocabulary import label_phrase
from hf_spatial.training.stages import load_config
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "run"
    # A home of its own, so that what the run leaves in the user's caches can be seen.
    env = {"HF_HOME": str(out.parent / "hf_home")}
    result = run_cli("demo", "--out", str(out), "--smallest", "--sources", "procedural", env=env)
    return out, result.stdout


def test_demo_keeps_its_datasets_cache_inside_the_run(demo_dir):
    out, _ = demo_dir
    if "HF_DATASETS_CACHE" in os.environ:
        pytest.skip("a cache folder the user chose (HF_DATASETS_CACHE) is kept")
    assert list((out / "cache" / "datasets").rglob("*.arrow"))  # Arrow copies of its folders, deleted with the run
    assert not list((out.parent / "hf_home").rglob("*.arrow"))


def test_demo_writes_the_report_folder_and_prints_the_summary(demo_dir):
    out, stdout = demo_dir
    assert "L1+L2 direction/relation tasks" in stdout and "mono (W only)" in stdout and "chance" in stdout
    assert f"model:     {out / 'model'}" in stdout
    results = json.loads((out / demo.DEMO_RESULTS_FILE).read_text())
    conditions = {"full", "no_audio", "mono", "spatial_zeroed", "cascade", "readout", "intensity_oracle"}
    assert set(results["conditions"]) == conditions
    for row in results["conditions"].values():
        scored = row["scored"]
        assert scored["n"] == results["plan"]["benchmark_items"] and 0 <= scored["accuracy"] <= 1
        assert scored["chance"] == pytest.approx(0.25) and set(row["tasks"]) <= set(demo.DEMO_TASKS)
        assert set(row["levels"]) <= {"1", "2"} and sum(level["n"] for level in row["levels"].values()) == scored["n"]
    assert results["sources"]["spec"] == "procedural"
    assert set(results["seconds"]) >= {
        "simulate",
        "benchmark",
        "align",
        "perception",
        "sft",
        "grpo",
        "evaluate",
    }
    report = (out / demo.REPORT_FILE).read_text()
    assert "| **all scored** |" in report and "l1_direction_sector" in report
    # The oracle is labelled so, the fair classical line, the encoder's own metrics and the cascade are shown.
    assert (
        "intensity + true source identity (oracle)" in report and "intensity + true source identity (oracle)" in stdout
    )
    assert "## Classical line without ground truth: single-source items" in report
    single = results["single_source"]
    if single:  # every line scored on the same single-source items
        assert len({row["scored"]["n"] for row in single.values()}) == 1 and "single-source items" in stdout
    # Source binding: the model, the readout and the oracle on the same multi-source items about a named sound.
    assert "## Source binding: the named sound, or another one it hears?" in report
    binding = results["source_binding"]
    if binding:
        assert len({line["items"] for line in binding.values() if line}) == 1 and "source binding (" in stdout
        assert 0 < binding["full"]["name_blind"] < 1
    assert "## Spatial encoder (hearing alone)" in report and "cascade (encoder slots as text)" in report
    assert "encoder readout (no language model)" in report and "encoder readout (no language model)" in stdout
    encoder = results["encoder"]
    assert encoder["seld_2024"]["official_clip_length"] and "spatial encoder, DCASE 2024" in stdout
    assert all(set(row) == {"encoder", "intensity"} for row in encoder["direction_error"].values())
    assert "| level 1 (atomic perception) |" in report and "level 1 (atomic perception): full " in stdout
    # What GRPO adds: the sft model on the same items, with its mono control; the GRPO reward groups' variance.
    for condition in demo.AFTER_SFT_CONDITIONS:
        assert results["after_sft"][condition]["scored"]["n"] == results["plan"]["benchmark_items"]
    assert "## What GRPO adds" in report and "after sft -> after grpo: full " in stdout
    assert "full (FOA) after sft" in report and "mono after grpo" in report
    assert 0 <= results["stages"]["grpo"]["reward_groups_without_variance"] <= 1
    # Training questions beside the held-out ones: the first of the training split, scored like the benchmark.
    training = results["training_questions"]["scored"]
    assert training["n"] == results["plan"]["benchmark_items"] and "training questions (" in stdout
    predictions = (out / "eval" / "model_training_questions" / "predictions.jsonl").read_text().splitlines()
    assert all(json.loads(line)["sample_id"].startswith("train-") for line in predictions)
    assert "## Training questions: what the model fits" in report and "full (FOA), training questions" in report
    # The whole benchmark: every level, under every control, most of its tasks untrained.
    whole = results["whole_benchmark"]
    assert set(whole) == set(demo.MODEL_CONDITIONS) and "## The whole benchmark" in report
    items = (out / "data" / "benchmark_all_tasks" / "twnm" / "metadata.jsonl").read_text().splitlines()
    assert whole["full"]["overall"]["n"] == len(items) and len({json.loads(item)["level"] for item in items}) == 3
    assert "whole benchmark, all tasks" in stdout
    targets = ("full_at_least_25_points_above_mono", "level2_full_at_least_15_points_above_mono")
    assert set(results["targets"]) >= {*targets, "sector_full_at_least_intensity_oracle"}
    assert "level 2 full - mono:" in stdout and "l1_direction_sector full - oracle intensity" in report
    assert list(results["stages"]) == ["align", "perception", "sft", "grpo"]  # how far each got, and why
    assert results["stages"]["sft"] == {"steps": results["plan"]["sft_steps"], "stopped_by": "max_steps"}
    assert (
        "training steps: align 1 (max_steps)" in stdout
        and "spatial encoder (frozen), name grounding" in results["model"]
    )
    for plot in ("scored_accuracy.png", "task_accuracy.png"):
        assert (out / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    for folder in ("model", "model_after_sft", "model_training_questions", "model_all_tasks", "cascade",
                   "encoder_readout", "intensity", "intensity_oracle"):  # fmt: skip
        assert (out / "eval" / folder / "report.md").is_file()
    assert (out / "eval" / "encoder" / "seld_metrics_2024.md").is_file()
    history = json.loads((out / "model" / "training_stages.json").read_text())
    assert [stage["stage"] for stage in history["stages"]] == ["align", "sft", "sft", "grpo"]
    perception, sft = history["stages"][1:3]  # atomic perception first, then every scored task
    assert perception["config"]["tasks"] == list(demo.PERCEPTION_TASKS)
    assert sft["config"]["tasks"] == list(demo.DEMO_TASKS)
    # SFT ranks each question's options as the evaluation does (the multiple-choice loss); perception does not.
    assert sft["config"]["choice_loss_weight"] > 0 and 0 <= sft["metrics"]["choice_accuracy"] <= 1
    assert not perception["config"].get("choice_loss_weight") and "choice_accuracy" not in perception["metrics"]
    assert not list(out.glob("stages/*/checkpoint-*")) and not list((out / "model").glob("checkpoint-*"))


def test_demo_model_loads_with_the_auto_classes(demo_dir):
    import torch
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    from hf_spatial.conventions import encode_plane_wave

    out, _ = demo_dir
    model = AutoModelForMultimodalLM.from_pretrained(out / "model")
    processor = AutoProcessor.from_pretrained(out / "model")
    foa = encode_plane_wave(torch.randn(24000).numpy() * 0.1, azimuth_deg=90, elevation_deg=0)
    messages = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Where is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, audio=foa, sampling_rate=24000, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    # Its questions' sound names carry their detections: grounding on for every class, and trained.
    phrases = [label_phrase(name) for name in model.config.spatial_class_names]
    assert model.config.spatial_name_token_ids == processor.name_token_ids(phrases)
    question = processor.tokenizer(f"Where is the {phrases[0]}?", return_tensors="pt")["input_ids"]
    assert name_token_mask(question, model.config.spatial_name_token_ids)[0, :, 0].any()
    assert model.model.spatial_projector.name_grounding[-1].weight.abs().sum() > 0


def test_demo_rerun_skips_finished_steps_and_refuses_another_plan(demo_dir):
    out, _ = demo_dir
    before = json.loads((out / demo.DEMO_RESULTS_FILE).read_text())
    again = run_cli("demo", "--out", str(out), "--smallest", "--sources", "procedural")
    steps = demo.demo_steps(demo.DemoPlan(**before["plan"]), "procedural", demo.DemoPaths(out), workers=1)
    assert again.stderr.count("done in an earlier run, skipped") == len(steps) == 17
    after = json.loads((out / demo.DEMO_RESULTS_FILE).read_text())
    assert after["conditions"] == before["conditions"]
    refused = run_cli("demo", "--out", str(out), "--minutes", "5", "--sources", "procedural", check=False)
    assert refused.returncode == 2 and "another plan" in refused.stderr


def test_the_encoder_stage_runs_first_only_when_the_demo_fine_tunes_the_encoder(tmp_path):
    paths = demo.DemoPaths(tmp_path)
    for fine_tune, first in ((False, "align"), (True, "encoder")):
        plan = demo.DemoPlan.smallest(fine_tune_encoder=fine_tune)
        stages = demo.demo_stages(plan)
        assert stages[0] == first and stages[1:] == demo.DEMO_STAGES[-len(stages) + 1 :]
        configs = [demo.stage_config(stage, plan, paths) for stage in stages]
        assert configs[0]["model_name_or_path"] == str(paths.initial_model)
        for previous, config in zip(stages[:-1], configs[1:], strict=True):  # each stage starts from the one before
            assert config["model_name_or_path"] == str(paths.stage(previous))
        steps = [step.name for step in demo.demo_steps(plan, "procedural", paths, workers=1)]
        assert [name for name in steps if name in demo.DEMO_STAGES] == list(stages)


def test_stage_configs_are_real_options_and_grpo_asks_as_sft_taught(tmp_path):
    paths, plan = demo.DemoPaths(tmp_path), demo.DemoPlan.for_minutes(13)
    for stage in demo.demo_stages(plan):
        config = demo.stage_config(stage, plan, paths, seconds=60.0)
        parsed = load_config(training_stage(stage), config)  # every key is a real option of the stage
        assert parsed.max_train_seconds == 60.0 and parsed.max_steps == config["max_steps"], stage
    sft, grpo = (demo.stage_config(stage, plan, paths, seconds=60.0) for stage in ("sft", "grpo"))
    assert sft["answer_format"] == grpo["answer_format"] == "text"  # GRPO samples what SFT taught the model


def test_plan_scales_with_minutes_and_machine_speed_and_auto_sources_fall_back(monkeypatch):
    small, default, large = (demo.DemoPlan.for_minutes(m) for m in (5, demo.DEFAULT_MINUTES, 30))
    assert small.train_scenes < default.train_scenes < large.train_scenes
    assert small.benchmark_items < default.benchmark_items < large.benchmark_items
    slow = demo.DemoPlan.for_minutes(demo.DEFAULT_MINUTES, slowdown=2.0)
    assert slow.train_scenes < default.train_scenes and slow.evaluation_seconds() == pytest.approx(
        default.evaluation_seconds(), rel=0.05
    )  # half the items at half the speed
    with pytest.raises(ValueError, match="--minutes"):
        demo.DemoPlan.for_minutes(1)

    # Each stage gets its share of what is left: the budgets of a run on schedule add up to the training time,
    # and a stage that starts late (slow data steps) leaves the later stages less, not the deadline.
    left = default.budget_seconds - 120
    on_time = [default.stage_budget(stage, left, list(demo.DEMO_STAGES)) for stage in demo.DEMO_STAGES[:1]]
    remaining, budgets = left, []
    for index, stage in enumerate(demo.DEMO_STAGES):
        budgets.append(default.stage_budget(stage, remaining, list(demo.DEMO_STAGES[index:])))
        remaining -= budgets[-1] + STAGE_OVERHEAD_SECONDS  # the stage's training, then its overhead
    assert budgets[0] == on_time[0] and remaining == pytest.approx(default.evaluation_seconds(), rel=1e-6)
    late = default.stage_budget("sft", 100.0, ["sft", "grpo"])
    assert 0 < late < default.stage_budget("sft", left / 2, ["sft", "grpo"])
    assert demo.DemoPlan.smallest().stage_budget("sft", 1e9, ["sft"]) is None  # fixed steps

    from hf_spatial.acoustics import debian

    def unavailable(*args, **kwargs):
        raise FileNotFoundError("The Debian sound bank needs apt-get")

    monkeypatch.setattr(debian, "load_debian_bank", unavailable)
    spec, reason = demo.resolve_sources("auto")
    assert spec == "procedural" and "apt-get" in reason
    with pytest.raises(FileNotFoundError):
        demo.resolve_sources("debian")
    assert demo.resolve_sources("procedural")[0] == "procedural"
