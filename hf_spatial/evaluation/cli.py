"""`hf-spatial evaluate`: a model or a baseline on a benchmark (with controls and circular evaluation), or SELD
metrics (on DCASE CSV folders, or on a model's spatial encoder over a simulated test split)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hf_spatial.atomic import check_output_folder
from hf_spatial.sharding import WHOLE, Shard, add_shard_arguments, shard_from_args

logger = logging.getLogger(__name__)

BASELINES = ("intensity", "intensity-oracle", "cascade")


def evaluate_benchmark(
    benchmark: str | Path,
    out: str | Path,
    model: str | Path | None = None,
    baseline: str | None = None,
    controls: bool = False,
    circular: bool = False,
    batch_size: int = 8,
    max_items: int | None = None,
    max_new_tokens: int = 16,
    device: str = "cpu",
    dtype: str | None = None,
    plots: bool = True,
    answer_format: str = "letter",
    scoring: str = "generate",
    embedding_cache: str | Path | None = None,
    shard: Shard = WHOLE,
) -> dict | None:
    """Evaluate a model (`model`) or a baseline (`baseline`: intensity, intensity-oracle, or cascade with `model`);
    writes eval_results.json, report.md, predictions.jsonl and plots to `out` and returns the results.
    `answer_format` and `scoring` are `ModelPredictor`'s (how the model is asked to answer, and generated vs most
    likely option); `embedding_cache` a folder of cached audio-encoder outputs (`hf-spatial embed`). `intensity`
    uses no ground truth (single-source items only); `intensity-oracle` is told which estimate is which source
    (`evaluation.baselines`).

    A model with a spatial encoder also gets the encoder's own metrics on the benchmark's scenes (DCASE 2024 SELD,
    direction error against the classical estimator; `OUT/encoder`) and, with `controls`, the cascade baseline
    (its encoder's slots as text for its language model) on the same items.

    `shard` with more than one part stores each part's records in `OUT/parts` (`evaluation.parts`); part K alone
    (`shard.index`) writes only its part and returns None, and the run of every part merges them into the outputs
    of one run."""
    from hf_spatial.evaluation.controls import CONDITIONS
    from hf_spatial.evaluation.items import Benchmark, load_benchmark
    from hf_spatial.evaluation.parts import score_in_parts
    from hf_spatial.evaluation.predictors import CascadePredictor
    from hf_spatial.evaluation.report import write_outputs
    from hf_spatial.evaluation.runner import EvaluationRun, evaluate

    if model is not None:
        check_model_folder(model)
    model_kwargs = dict(
        device=device, dtype=dtype, max_new_tokens=max_new_tokens, answer_format=answer_format, scoring=scoring
    )
    if baseline in ("intensity", "intensity-oracle"):
        if model is not None:
            raise ValueError(f"--baseline {baseline} needs no --model (it is classical signal processing).")
        from hf_spatial.evaluation.baselines import IntensityBaseline

        predictor = IntensityBaseline(oracle_identity=baseline == "intensity-oracle")
    elif model is None:
        raise ValueError("Pass --model PATH (a model folder) or --baseline intensity.")
    elif baseline == "cascade":
        predictor = CascadePredictor(model, **model_kwargs)
    elif baseline is None:
        from hf_spatial.evaluation.predictors import ModelPredictor

        predictor = ModelPredictor(model, embedding_cache=embedding_cache, **model_kwargs)
    else:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}.")
    bench = load_benchmark(benchmark, max_items=max_items)
    conditions = CONDITIONS if controls else ("full",)
    spatial = baseline is None and hasattr(predictor.model, "get_spatial_outputs")
    cascade_predictor = None
    if spatial and controls:
        reused = dict(model=predictor.model, processor=predictor.processor)
        cascade_predictor = CascadePredictor(model, **model_kwargs, **reused)

    def score(items: list[dict]) -> tuple[EvaluationRun, EvaluationRun | None]:
        part = Benchmark(name=bench.name, items=items, split=bench.split, audio_rows=bench.audio_rows)
        run = evaluate(predictor, part, conditions, circular=circular, batch_size=batch_size)
        cascade = evaluate(cascade_predictor, part, ("full",), batch_size=batch_size) if cascade_predictor else None
        return run, cascade

    if shard.count == 1:
        run, cascade = score(bench.items)
    else:
        settings = dict(
            benchmark=str(benchmark), num_items=len(bench.items), model=None if model is None else str(model),
            baseline=baseline, controls=controls, circular=circular, batch_size=batch_size, dtype=dtype,
            max_new_tokens=max_new_tokens, answer_format=answer_format, scoring=scoring,
            embedding_cache=None if embedding_cache is None else str(embedding_cache),
        )  # fmt: skip
        merged = score_in_parts(out, shard, bench.items, settings, score)
        if merged is None:
            return None
        run, cascade = merged
    encoder = None
    if spatial:
        from hf_spatial.evaluation.seld import evaluate_encoder_on_benchmark

        feature_extractor = predictor.processor.feature_extractor
        encoder = evaluate_encoder_on_benchmark(predictor.model, feature_extractor, bench, Path(out) / "encoder")
    info = {"num_items": len(bench.items)}
    return write_outputs(run, out, info, plots=plots, cascade=cascade, encoder=encoder)


def check_model_folder(model: str | Path) -> Path:
    """`--model` as an existing folder (the Hub is not reached from here), else a one-line error saying what to pass."""
    model = Path(model)
    if not model.is_dir():
        what = "is a file" if model.exists() else "does not exist"
        raise FileNotFoundError(
            f"--model {model} {what}; pass a model folder (written by `hf-spatial train` or `save_pretrained`)."
        )
    return model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model or baseline on the ASA benchmark, or SELD metrics",
        description=(
            "Benchmark: --model PATH | --baseline intensity | --baseline intensity-oracle | --baseline cascade "
            "--model PATH, with --benchmark DIR. "
            "SELD: --seld --ref DIR --pred DIR, or --seld --model PATH --dataset DIR."
        ),
    )
    parser.add_argument("--model", type=Path, help="model folder (our Auto classes or a stock Qwen2-Audio)")
    parser.add_argument(
        "--baseline",
        choices=BASELINES,
        help="evaluate a baseline instead: intensity (classical, no ground truth: single-source items), "
        "intensity-oracle (told the true source identities), cascade (the model's encoder slots as text)",
    )
    parser.add_argument("--benchmark", type=Path, help="benchmark folder (hf-spatial benchmark build, or TWNM layout)")
    parser.add_argument("--controls", action="store_true", help="also no_audio, mono, spatial_zeroed, rotated")
    parser.add_argument("--circular", action="store_true", help="also ask each item with options rotated 4 times")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-items", type=int, default=None, help="evaluate the first N items only")
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
    seld.add_argument("--split", default="test")
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
