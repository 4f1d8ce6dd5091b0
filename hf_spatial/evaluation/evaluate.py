"""Scoring a model or a baseline on a benchmark: `evaluate_benchmark`, what `hf-spatial evaluate` and the demo run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hf_spatial.sharding import WHOLE, Shard

BASELINES = ("intensity", "intensity-oracle", "cascade", "encoder-readout")


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
    conditions: Sequence[str] | None = None,
    encoder_metrics: bool = True,
    split: str = "test",
) -> dict | None:
    """Evaluate a model (`model`) or a baseline (`baseline`: intensity, intensity-oracle, or cascade or
    encoder-readout with `model`); writes eval_results.json, report.md, predictions.jsonl and plots to `out` and
    returns the results.
    `answer_format` and `scoring` are `ModelPredictor`'s (how the model is asked to answer, and generated vs most
    likely option); `embedding_cache` a folder of cached audio-encoder outputs (`hf-spatial embed`). `intensity`
    uses no ground truth (single-source items only); `intensity-oracle` is told which estimate is which source
    (`evaluation.baselines`); `encoder-readout` answers from the model's spatial encoder alone, without its
    language model (`evaluation.readout`). `split` is the split of the benchmark folder to score: `test`, or `train`
    of a question dataset (`hf-spatial questions`) to measure how much of its training questions a model fits.

    `conditions` names the conditions to score (default: every control with `controls`, else `full` alone). A
    model with a spatial encoder also gets the encoder's own metrics on the benchmark's scenes (DCASE 2024 SELD,
    direction error against the classical estimator; `OUT/encoder`) unless `encoder_metrics=False` and, with
    `controls`, the cascade baseline (its encoder's slots as text for its language model) on the same items.

    `shard` with more than one part stores each part's records in `OUT/parts` (`evaluation.parts`); part K alone
    (`shard.index`) writes only its part and returns None, and the run of every part merges them into the outputs
    of one run."""
    from hf_spatial.evaluation.controls import CONDITIONS
    from hf_spatial.evaluation.items import Benchmark, load_benchmark
    from hf_spatial.evaluation.parts import score_in_parts
    from hf_spatial.evaluation.predictors import CascadePredictor
    from hf_spatial.evaluation.readout import EncoderReadout
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
    elif baseline == "encoder-readout":
        predictor = EncoderReadout(model, device=device)
    elif baseline is None:
        from hf_spatial.evaluation.predictors import ModelPredictor

        predictor = ModelPredictor(model, embedding_cache=embedding_cache, **model_kwargs)
    else:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}.")
    bench = load_benchmark(benchmark, split, max_items)
    conditions = tuple(conditions or (CONDITIONS if controls else ("full",)))
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
            benchmark=str(benchmark), split=split, num_items=len(bench.items),
            model=None if model is None else str(model), baseline=baseline, conditions=list(conditions),
            circular=circular, batch_size=batch_size, dtype=dtype,
            max_new_tokens=max_new_tokens, answer_format=answer_format, scoring=scoring,
            embedding_cache=None if embedding_cache is None else str(embedding_cache),
        )  # fmt: skip
        merged = score_in_parts(out, shard, bench.items, settings, score)
        if merged is None:
            return None
        run, cascade = merged
    encoder = None
    if spatial and encoder_metrics:
        from hf_spatial.evaluation.seld import evaluate_encoder_on_benchmark

        feature_extractor = predictor.processor.feature_extractor
        encoder = evaluate_encoder_on_benchmark(predictor.model, feature_extractor, bench, Path(out) / "encoder")
    info = {"num_items": len(bench.items), "split": bench.split}
    return write_outputs(run, out, info, plots=plots, cascade=cascade, encoder=encoder, items=bench.items)


def check_model_folder(model: str | Path) -> Path:
    """`--model` as an existing folder (the Hub is not reached from here), else a one-line error saying what to pass."""
    model = Path(model)
    if not model.is_dir():
        what = "is a file" if model.exists() else "does not exist"
        raise FileNotFoundError(
            f"--model {model} {what}; pass a model folder (written by `hf-spatial train` or `save_pretrained`)."
        )
    return model
