"""`hf-spatial evaluate`: a model or a baseline on a benchmark (with controls and circular evaluation), or SELD
metrics (on DCASE CSV folders, or on a model's spatial encoder over a simulated test split)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hf_spatial.atomic import check_output_folder
from hf_spatial.evaluation.evaluate import BASELINES, check_model_folder, evaluate_benchmark
from hf_spatial.sharding import add_shard_arguments, shard_from_args

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model or baseline on the ASA benchmark, or SELD metrics",
        description=(
            "Benchmark: --model PATH | --baseline intensity | --baseline intensity-oracle | --baseline cascade "
            "--model PATH | --baseline encoder-readout --model PATH, with --benchmark DIR. "
            "SELD: --seld --ref DIR --pred DIR, or --seld --model PATH --dataset DIR."
        ),
    )
    parser.add_argument("--model", type=Path, help="model folder (our Auto classes or a stock Qwen2-Audio)")
    parser.add_argument(
        "--baseline",
        choices=BASELINES,
        help="evaluate a baseline instead: intensity (classical, no ground truth: single-source items), "
        "intensity-oracle (told the true source identities), cascade (the model's encoder slots as text), "
        "encoder-readout (the model's encoder detections read directly, no language model)",
    )
    parser.add_argument("--benchmark", type=Path, help="benchmark folder (hf-spatial benchmark build, or TWNM layout)")
    parser.add_argument("--controls", action="store_true", help="also no_audio, mono, spatial_zeroed, rotated")
    parser.add_argument("--circular", action="store_true", help="also ask each item with options rotated 4 times")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-items", type=int, default=None, help="evaluate the first N items only")
    parser.add_argument(
        "--split",
        default="test",
        help="split to score (default test): e.g. train of a question dataset (hf-spatial questions) to see how much "
        "of its training questions a model fits beside the held-out ones; with --seld, the dataset's split",
    )
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--answer-format",
        choices=("letter", "text"),
        default="letter",
        help="ask for the option's letter, or its words (models trained with answer_format text)",
    )
    parser.add_argument(
        "--scoring",
        choices=("generate", "likelihood"),
        default="generate",
        help="parse a greedy generation, or take the option the model finds most likely (multiple-choice scoring)",
    )
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        default=None,
        help="folder of cached audio-encoder outputs (hf-spatial embed): each clip's encoders run once",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="e.g. bfloat16 (default: the checkpoint's)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: MODEL/eval or ./eval-NAME)")
    add_shard_arguments(parser, "benchmark items (after --max-items)")
    seld = parser.add_argument_group("SELD metrics")
    seld.add_argument("--seld", action="store_true", help="DCASE SELD metrics instead of the benchmark")
    seld.add_argument("--ref", type=Path, help="folder of reference DCASE CSVs")
    seld.add_argument("--pred", type=Path, help="folder of prediction DCASE CSVs")
    seld.add_argument("--dataset", type=Path, help="simulated dataset folder (with --model: run its encoder)")
    seld.add_argument("--edition", type=int, choices=(2023, 2024), default=2024)
    seld.add_argument("--num-classes", type=int, default=13, help="class count of CSV folders (--ref/--pred)")
    seld.add_argument("--max-scenes", type=int, default=None)
    parser.set_defaults(func=run)


def _default_out(args: argparse.Namespace) -> Path:
    if args.out is not None:
        return args.out
    if args.model is not None and args.baseline is None:
        return args.model / "eval"
    return Path(f"eval-{args.baseline or 'seld'}")


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(_default_out(args))
    shard = shard_from_args(args)
    if args.seld:
        if shard.count > 1:
            raise ValueError("--shard-index/--num-shards split benchmark evaluation; --seld runs as one job.")
        return _run_seld(args, out)
    if args.benchmark is None:
        raise ValueError("--benchmark DIR is required (build one with `hf-spatial benchmark build`).")
    results = evaluate_benchmark(
        args.benchmark,
        out,
        model=args.model,
        baseline=args.baseline,
        controls=args.controls,
        circular=args.circular,
        batch_size=args.batch_size,
        max_items=args.max_items,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        dtype=args.dtype,
        plots=not args.no_plots,
        answer_format=args.answer_format,
        scoring=args.scoring,
        embedding_cache=args.embedding_cache,
        shard=shard,
        split=args.split,
    )
    if results is None:
        from hf_spatial.evaluation.parts import PARTS_FOLDER

        print(
            f"evaluated part {shard.index} of {shard.count} into {out / PARTS_FOLDER}; when every part is done, run "
            "this command without --shard-index to merge them into the report"
        )
        return 0
    for name, condition in results["conditions"].items():
        overall = condition["overall"]
        low, high = overall["ci95"]
        print(
            f"{name:>15}: {100 * overall['accuracy']:5.1f}% ({100 * low:.1f}-{100 * high:.1f}) of {overall['n']} "
            f"(chance {100 * overall['chance']:.1f}%)"
        )
    print(f"report: {out / 'report.md'}")
    return 0


def _run_seld(args: argparse.Namespace, out: Path) -> int:
    if args.ref is not None or args.pred is not None:
        if args.ref is None or args.pred is None:
            raise ValueError("--seld with CSV folders needs both --ref DIR and --pred DIR.")
        from hf_spatial.seld.metrics import evaluate_csv_folders

        results = evaluate_csv_folders(
            args.ref,
            args.pred,
            edition=args.edition,
            num_classes=args.num_classes,
            report_path=(args.out / f"seld_metrics_{args.edition}.md") if args.out else None,
        )
    elif args.model is not None and args.dataset is not None:
        from hf_spatial.seld.evaluate import evaluate_model_seld

        results = evaluate_model_seld(
            check_model_folder(args.model),
            args.dataset,
            out,
            edition=args.edition,
            split=args.split,
            batch_size=args.batch_size,
            max_scenes=args.max_scenes,
            device=args.device,
        )
    else:
        raise ValueError("--seld needs --ref DIR --pred DIR (CSV folders) or --model PATH --dataset DIR.")
    metrics = {k: v for k, v in results["metrics"].items() if isinstance(v, int | float)}
    print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))
    print(f"report: {results['report_path']}")
    return 0
