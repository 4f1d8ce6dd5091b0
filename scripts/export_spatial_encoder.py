"""Export the spatial encoder of an encoder-stage output folder as a pretrained spatial encoder folder (config.json,
model.safetensors, README.md card), e.g. the one shipped in `hf_spatial/pretrained/spatial_encoder/`.

The card records how the encoder was trained (the stage's config and steps, the `hf-spatial simulate` commands of its
data) and, with `--bench`, the measured figures of `scripts/bench_encoder.py` (its JSON line) on held-out scenes.

    python scripts/export_spatial_encoder.py --model runs/encoder --out hf_spatial/pretrained/spatial_encoder \
        [--bench runs/bench_encoder [--bench runs/bench_other_test_set]]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoModelForMultimodalLM, AutoProcessor

import hf_spatial  # noqa: F401  (registers the Auto classes)
from hf_spatial.models.spatial_encoders import save_spatial_encoder
from hf_spatial.training.records import STAGES_FILE

RECIPE = "hf_spatial/training/configs/pretrain_encoder.yaml"
REFINEMENT = (
    "Its slots' directions are refined on the measured intensity: mean-shift steps (concentrations {} in "
    "config.json, `spatial_direction_refinement`) move each slot's direction to the mode of the per-bin intensity "
    "directions of the frames it is active in. No weight depends on it: a model built with "
    "`spatial_direction_refinement=[]` reads the same weights without it (the bench shows both)."
)


def card(model, model_dir: Path, benches: list[Path], initialised_from: str | None = None) -> str:
    history = json.loads((model_dir / STAGES_FILE).read_text(encoding="utf-8"))
    stage = history["stages"][-1]
    generations = []
    for folder in stage["datasets"]:
        for split in ("train", "test"):
            record = Path(folder) / "generation" / f"{split}.json"
            if record.is_file():
                generations.append(json.loads(record.read_text(encoding="utf-8")))
    sources = sorted({generation["parameters"]["sources"] for generation in generations})
    encoder = model.model.spatial_encoder
    parameters = sum(p.numel() for p in encoder.parameters())
    config = {key: value for key, value in stage["config"].items() if key not in ("output_dir", "dataset_dir")}
    start = config.get("spatial_encoder_name_or_path")
    train = [
        "hf-spatial train --stage encoder --config " + RECIPE + " \\",
        "        --dataset_dir runs/scenes --output_dir runs/pretrain_encoder"
        + (" --spatial_encoder_name_or_path START" if start else ""),
    ]
    lines = [
        "# Pretrained spatial encoder (hf-spatial)",
        "",
        "The spatial encoder of SpatialQwenAudio (CNN over the FOA spatial features, Conformer blocks, dense 25 Hz "
        f"map, slot and ACCDOA heads): {parameters:,} parameters. "
        f"Classes: {', '.join(model.config.spatial_class_names)} "
        f"(those of its training sources, `{', '.join(sources)}`). Load it into any SpatialQwenAudio with "
        "`build_tiny_spatial_qwen_audio(spatial_encoder_name_or_path='shipped')`, "
        "`build_pretrained_spatial_qwen_audio(...)` (the default) or `load_spatial_encoder(model, 'shipped')`; a model "
        "with other classes gets the rows of the classes they share and trains the rest in its encoder stage.",
        *(
            ["", REFINEMENT.format(list(model.config.spatial_direction_refinement))]
            if model.config.spatial_direction_refinement
            else []
        ),
        "",
        "## Training",
        "",
        f"Encoder stage (`hf-spatial train --stage encoder`), {stage['metrics'].get('steps')} steps, stopped by "
        f"{stage['metrics'].get('stopped_by')}; config (what differs from the defaults):",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
        *([f"Initialised from: {initialised_from}", ""] if initialised_from else []),
        "Data (hybrid renderer, RT60 0.2-1.2 s, diffuse noise in half the scenes, the commands `hf-spatial "
        "simulate` recorded) and training; to reproduce (same seed, same bytes on the same software"
        + ("; START: the encoder it was initialised from" if start else "")
        + "):",
        "",
        *[f"    {generation['command'].replace('--out OUT', '--out runs/scenes')}" for generation in generations],
        *[f"    {line}" for line in train],
        "    python scripts/export_spatial_encoder.py --model runs/pretrain_encoder --out OUT",
        "    python scripts/bench_encoder.py --scenes runs/scenes --encoder OUT --minutes 10",
    ]
    if benches:
        lines += [
            "",
            "## Metrics",
            "",
            "`scripts/bench_encoder.py` on held-out scenes (test rooms and test clips). Direction errors: every "
            "estimator is told the true source count and matched to the sources by the Hungarian algorithm. F20, DOAE, "
            "LR: class-aware DCASE 2024 metrics of the encoder's own detections (slots; no ground truth). A `fresh "
            "run` row is the same recipe trained from scratch for the bench's budget.",
        ]
        for bench in benches:
            lines += ["", (bench / "table.md").read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an encoder-stage output folder")
    parser.add_argument("--out", required=True, help="the spatial encoder folder to write (replaced)")
    parser.add_argument(
        "--bench",
        action="append",
        default=[],
        help="bench_encoder.py's output folder (its table.md) for this encoder; repeat for several test sets",
    )
    parser.add_argument(
        "--initialised-from", default=None, help="for the card: the encoder the stage started from, and where to get it"
    )
    args = parser.parse_args()
    model_dir = Path(args.model)
    model = AutoModelForMultimodalLM.from_pretrained(model_dir)
    extractor = AutoProcessor.from_pretrained(model_dir).feature_extractor
    benches = [Path(bench) for bench in args.bench]
    save_spatial_encoder(model, extractor, args.out, card(model, model_dir, benches, args.initialised_from))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
