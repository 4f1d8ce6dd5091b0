"""The card of a staged TWNM-layout benchmark: item counts per level and task, answer balance, audio format."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from hf_spatial.hub_cards.common import PIPELINE_TAG, SPATIAL_TAGS, TEMPLATES, size_category, spread

from hf_spatial.tasks.twnm import TWNM_COLUMNS, read_twnm_benchmark


def benchmark_card(
    folder: str | os.PathLike, *, repo_id: str | None = None, name: str | None = None, license: str | None = None
):
    """The card of a staged TWNM-layout benchmark: item counts per level and task, answer balance, audio format."""
    import soundfile
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(folder)
    rows = read_twnm_benchmark(folder)
    levels = Counter(int(row["level"]) for row in rows)
    tasks = Counter((int(row["level"]), row["task"]) for row in rows)
    letters = Counter(row["answer_letter"] for row in rows)
    files = sorted({row["file_name"] for row in rows})
    infos = [soundfile.info(str(folder / name)) for name in files]
    patterns = sorted({(str(Path(name).parent / f"*{Path(name).suffix}")).removeprefix("./") for name in files})
    card_data = DatasetCardData(
        license=license or "other",
        task_categories=[PIPELINE_TAG, "question-answering"],
        tags=[*SPATIAL_TAGS, "benchmark", "twnm", "synthetic"],
        size_categories=[size_category(len(rows))],
        pretty_name=f"{name or folder.name} (spatial audio scene analysis benchmark)",
        configs=[{"config_name": "default", "data_files": [{"split": "test", "path": ["metadata.jsonl", *patterns]}]}],
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATES / "benchmark_card.md.jinja"),
        title=card_data.pretty_name,
        repo_id=repo_id or f"USER/{folder.name}",
        num_items=len(rows),
        num_files=len(files),
        levels=dict(sorted(levels.items())),
        tasks=[{"level": level, "task": task, "count": count} for (level, task), count in sorted(tasks.items())],
        letters={letter: letters[letter] for letter in "ABCD"},
        channels=sorted({info.channels for info in infos}),
        sample_rates=sorted({info.samplerate for info in infos}),
        duration=spread([info.duration for info in infos]),
        formats=sorted({f"{info.format} {info.subtype}" for info in infos}),
        extra_fields=sorted(set().union(*(row.keys() for row in rows)) - {*TWNM_COLUMNS, "audio_path"}),
    )
