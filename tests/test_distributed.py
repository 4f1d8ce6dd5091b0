"""Multi-process training: `accelerate launch` with the shipped DDP config runs align, SFT (with the embedding cache)
and GRPO in two CPU processes (gloo); the ranks train on different rows of the same global batches, end with
identical weights, and (align, SFT) match one process with the same global batch. The FSDP and DeepSpeed configs,
which need GPUs, are checked through accelerate's own launcher code.

GRPO is not compared with one process: each rank samples its completions from its own copy of the seeded generator,
so two ranks draw other tokens than one process drawing for all rows, and the completions (hence the updates) differ.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "scripts" / "accelerate"
NUM_STEPS = 3
STEPS = ("--max_steps", str(NUM_STEPS), "--save_steps", "100", "--eval_split", "none", "--logging_steps", "1")
# Equal up to the order of floating-point reductions (all-reduce of two gradients vs one batch's gradient).
TOLERANCE = {"atol": 1e-6, "rtol": 1e-5}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _probe(record: Path, commands: list[list[str]], processes: int, cwd: Path) -> None:
    """Run the commands in `processes` processes (accelerate launch with the DDP config), recording each rank."""
    argv = [arg for command in commands for arg in ("--then", *command)][1:]
    probe = ["-m", "tests.ddp_probe", str(record), *argv]
    if processes > 1:
        launch = ["-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "ddp.yaml")]
        launch += [
            "--num_processes",
            str(processes),
            "--mixed_precision",
            "no",
            "--main_process_port",
            str(_free_port()),
        ]
        probe = [*launch, *probe]
    # A private HF_HOME: no user accelerate config, and a datasets cache of this test's own.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HOME": str(cwd / "hf_home"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(probe)} exited {result.returncode}\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, scenes_dir, questions_dir) -> Path:
    """align -> sft (embedding cache, multiple-choice loss: two forwards a step) -> grpo in two processes, then align
    and sft (from the same start) in one."""
    from hf_spatial.data.folders import load_folder
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
    from hf_spatial.training.common import dataset_labels

    root = tmp_path_factory.mktemp("distributed")
    model, processor = build_tiny_spatial_qwen_audio(
        seed=0, class_names=dataset_labels(load_folder(scenes_dir, "train"))
    )
    model.config.spatial_dropout = 0.0  # dropout masks are drawn per process: without it, one run matches two
    model.save_pretrained(root / "start")
    processor.save_pretrained(root / "start")

    def align(out: str, batch: int) -> list[str]:
        return ["train", "--stage", "align", "--model_name_or_path", str(root / "start"), "--dataset_dir",
                str(scenes_dir), "--output_dir", out, "--per_device_train_batch_size", str(batch), *STEPS]  # fmt: skip

    def sft(out: str, batch: int) -> list[str]:
        return ["train", "--stage", "sft", "--model_name_or_path", str(root / "two" / "align"), "--dataset_dir",
                str(questions_dir), "--output_dir", out, "--per_device_train_batch_size", str(batch),
                "--lora_dropout", "0", "--embedding_cache", str(root / "embeddings"), "--choice_loss_weight", "1",
                *STEPS]  # fmt: skip

    grpo = ["train", "--stage", "grpo", "--model_name_or_path", str(root / "two" / "sft"), "--dataset_dir",
            str(questions_dir), "--output_dir", str(root / "two" / "grpo"), "--per_device_train_batch_size", "4",
            "--num_generations", "4", "--max_completion_length", "8", "--learning_rate", "0.01", *STEPS]  # fmt: skip
    two = [align(str(root / "two" / "align"), 2), sft(str(root / "two" / "sft"), 2), grpo]
    _probe(root / "record-two", two, processes=2, cwd=root)
    one = [align(str(root / "one" / "align"), 4), sft(str(root / "one" / "sft"), 4)]
    _probe(root / "record-one", one, processes=1, cwd=root)
    return root


def _record(runs: Path, run: str, stage: str, rank: int) -> tuple[dict, dict[str, torch.Tensor]]:
    """What a rank saw (the rows of each training step's batch: accelerate's loader collates one batch ahead, which
    is left out) and the weights it ended with."""
    name = runs / f"record-{run}" / f"{stage}-rank{rank}"
    seen = json.loads(name.with_suffix(".json").read_text())
    assert len(seen["batches"]) >= NUM_STEPS
    seen["batches"] = seen["batches"][:NUM_STEPS]
    return seen, torch.load(name.with_suffix(".pt"))


@pytest.mark.parametrize("stage", ["align", "sft", "grpo"])
def test_two_ranks_train_on_different_rows_and_end_with_identical_weights(runs, stage):
    (seen0, weights0), (seen1, weights1) = _record(runs, "two", stage, 0), _record(runs, "two", stage, 1)
    for rows0, rows1 in zip(seen0["batches"], seen1["batches"], strict=True):
        assert rows0 and rows1 and set(rows0).isdisjoint(rows1)
    assert weights0.keys() == weights1.keys()
    assert all(torch.equal(weights0[name], weights1[name]) for name in weights0)
    # The weights did move: LoRA's B matrices start at zero, the align stage's projector output too.
    moved = [name for name in weights0 if ("lora_B" in name or "spatial_projector.output" in name)]
    assert moved and max(weights0[name].abs().max().item() for name in moved) > 1e-4
    assert (runs / "two" / stage / "training_stages.json").is_file()


@pytest.mark.parametrize("stage", ["align", "sft"])
def test_two_processes_equal_one_process_with_the_same_global_batch(runs, stage):
    (seen0, weights0), (seen1, _) = _record(runs, "two", stage, 0), _record(runs, "two", stage, 1)
    seen, weights = _record(runs, "one", stage, 0)
    # Global batch b of two processes (2 rows each) is batch b of one process (4 rows), in the same order.
    assert seen["batches"] == [rows0 + rows1 for rows0, rows1 in zip(seen0["batches"], seen1["batches"], strict=True)]
    assert weights.keys() == weights0.keys()
    for name in weights:
        torch.testing.assert_close(weights0[name], weights[name], **TOLERANCE, msg=name)


def test_embedding_cache_is_written_once_by_the_main_process(runs, scenes_dir):
    (main, _), (other, _) = _record(runs, "two", "sft", 0), _record(runs, "two", "sft", 1)
    (single, _) = _record(runs, "one", "sft", 0)
    from hf_spatial.data.folders import load_folder

    assert main["embedded"] == len(load_folder(scenes_dir, "train")) and other["embedded"] == 0
    assert single["embedded"] == 0  # the one-process run finds every clip in the cache the two processes left
    (folder,) = (runs / "embeddings").iterdir()
    assert len(list(folder.glob("shard-*.safetensors"))) == 1


def _launch(config: Path):
    """The arguments and environment `accelerate launch --config_file CONFIG` gives the processes it starts, and the
    names of its options."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    parser = launch_command_parser()
    options = {action.dest for action in parser._actions}
    args, defaults, _ = _validate_launch_command(parser.parse_args(["--config_file", str(config), "-m", "hf_spatial"]))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        return args, defaults, prepare_deepspeed_cmd_env(args)[1], options
    return args, defaults, prepare_multi_gpu_env(args), options


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ddp", {"ACCELERATE_USE_FSDP": None, "ACCELERATE_USE_DEEPSPEED": None}),
        ("fsdp", {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT"}),
        ("deepspeed_zero2", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}),
        ("deepspeed_zero3", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}),
    ],
)
def test_accelerate_configs_reach_the_launched_processes(name, expected):
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    args, defaults, env, options = _launch(CONFIGS / f"{name}.yaml")
    assert args.num_processes == 8 and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert {key: env.get(key) for key in expected} == expected
    # accelerate copies each key of these sections onto the launch option of that name and silently drops the rest.
    for section, prefix in (("deepspeed_config", ""), ("fsdp_config", "fsdp_")):
        for key in getattr(defaults, section) or {}:
            assert (key if key.startswith(prefix) else prefix + key) in options, f"{section}.{key} is not an option"
    if name == "fsdp":
        model, _ = build_tiny_spatial_qwen_audio()
        classes = {type(module).__name__ for module in model.modules()}
        assert set(env["FSDP_TRANSFORMER_CLS_TO_WRAP"].split(",")) <= classes
