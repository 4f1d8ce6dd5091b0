"""Run a predictor on a benchmark under each condition (and circularly), and score with the shared scorer."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hf_spatial.evaluation.circular import circular_variants, combine_circular
from hf_spatial.evaluation.controls import CONDITIONS, Request, prepare
from hf_spatial.evaluation.items import Benchmark
from hf_spatial.evaluation.predictors import Predictor
from hf_spatial.tasks.parsing import option_texts
from hf_spatial.tasks.scoring import score_item

logger = logging.getLogger(__name__)

CIRCULAR = "circular"
NOT_APPLICABLE = "task not applicable to this predictor"  # an exclusion reason


@dataclass
class EvaluationRun:
    """Per condition: scored records (one per item) and why items were left out."""

    predictor: str
    benchmark: str
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)


def _record(request: Request, response: str, details: dict[str, Any] | None) -> dict[str, Any]:
    record = score_item(request.item, response)
    record.update(
        condition=request.condition,
        response=response,
        answer_text=request.item["answer_text"],
        predicted_text=option_texts(request.item).get(record["predicted_letter"]),
        evidence=request.item.get("evidence"),
    )
    if details:
        record.update(details)
    return record


def _batches(requests: Iterator[Request], size: int) -> Iterator[list[Request]]:
    batch: list[Request] = []
    for request in requests:
        batch.append(request)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _predict(predictor: Predictor, requests: Iterator[Request], batch_size: int, bar) -> list[dict[str, Any]]:
    records = []
    for batch in _batches(requests, batch_size):
        responses = predictor.predict(batch)
        details = getattr(predictor, "last_details", None) or [None] * len(batch)
        records += [_record(r, text, d) for r, text, d in zip(batch, responses, details, strict=True)]
        bar.update(len(batch))
    return records


def evaluate(
    predictor: Predictor,
    benchmark: Benchmark,
    conditions: Sequence[str] = ("full",),
    circular: bool = False,
    batch_size: int = 8,
) -> EvaluationRun:
    """Score `predictor` on every applicable item under each condition it supports (`circular`: full condition,
    each item with its options in all four cyclic orders)."""
    from tqdm.auto import tqdm

    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"Unknown condition(s) {unknown}; expected some of {CONDITIONS}.")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}.")
    run = EvaluationRun(predictor=predictor.name, benchmark=benchmark.name)
    applicable = [item for item in benchmark.items if predictor.applies_to(item)]
    not_applicable = len(benchmark.items) - len(applicable)
    skipped = [c for c in conditions if c not in predictor.conditions]
    if skipped:
        logger.info("%s does not support the condition(s) %s; skipped", predictor.name, skipped)
    plan = [c for c in conditions if c in predictor.conditions] + ([CIRCULAR] if circular else [])
    for condition in plan:
        excluded: Counter[str] = Counter()
        if not_applicable:
            excluded[NOT_APPLICABLE] = not_applicable

        def requests(condition: str = condition, excluded: Counter = excluded) -> Iterator[Request]:
            for item in applicable:
                scene = benchmark.scene(item)
                base = "full" if condition == CIRCULAR else condition
                audio = None if base == "no_audio" else benchmark.audio(item)
                variants = circular_variants(item) if condition == CIRCULAR else [item]
                for variant in variants:
                    request = prepare(base, variant, audio, scene)
                    if isinstance(request, str):
                        excluded[request] += 1
                        continue
                    yield request

        total = len(applicable) * (4 if condition == CIRCULAR else 1)
        with tqdm(total=total, desc=f"{predictor.name} [{condition}]", unit="q") as bar:
            records = _predict(predictor, requests(), batch_size, bar)
        if condition == CIRCULAR:
            records = _combine(applicable, records)
        run.records[condition] = records
        run.excluded[condition] = dict(excluded)
    return run


def _combine(items: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_item: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_item.setdefault(record["sample_id"].rsplit("#rot", 1)[0], []).append(record)
    return [combine_circular(item, by_item[item["sample_id"]]) for item in items if item["sample_id"] in by_item]
