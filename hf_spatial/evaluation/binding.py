"""Source binding: on a question about one named sound in a scene of several, does a model answer for the sound the
question names, or for another sound it hears?

A model can be right on many such items without binding the name to a sound at all: answering for the loudest or
any one sound it hears is right whenever that sound is the named one or shares its answer. So the items counted are
those where the named sound's answer differs from another sound's, and three shares are reported: answers that are
the named sound's (`named`), answers that are another present sound's instead (`another_source`), and what a
localiser that is perfect but ignores the name would get on the first (`name_blind`: it answers for one of the
scene's sounds at random).

```python
binding = source_binding(records, benchmark.items)       # records: one condition's prediction records
binding["named"]["share"], binding["another_source"]["share"], binding["name_blind"]
```

`hf-spatial evaluate` reports it for every condition that presents the item's own scene (`BINDING_CONDITIONS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.tasks.registry import TASKS, resolve_tasks
from hf_spatial.tasks.scoring import wilson_interval
from hf_spatial.tasks.solving import answer_for_scene, item_params

# The conditions whose gold answers are those of the item's own scene and options in their own order (`rotated`
# re-answers a rotated scene, `circular` permutes the options).
BINDING_CONDITIONS = ("full", "no_audio", "mono", "spatial_zeroed")


def answers_per_source(item: Mapping[str, Any]) -> tuple[int, list[str | None]] | None:
    """For a direction question about one named source (`params` {"source": i}) in a scene of two or more: the
    named index and the option letter that would answer it for each source of the scene; None for other items."""
    if not item.get("scene"):
        return None
    resolve_tasks([item["task"]])
    params = item_params(item)
    if not TASKS[item["task"]].uses_direction or set(params) != {"source"}:
        return None
    scene = SceneSpec.from_json(item["scene"])
    if len(scene.sources) < 2:
        return None
    letters = [
        answer_for_scene({**item, "params": {"source": index}}, scene, strict=False)
        for index in range(len(scene.sources))
    ]
    return params["source"], letters


def _share(count: int, total: int) -> dict[str, Any]:
    low, high = wilson_interval(count, total)
    return {"share": count / total, "ci95": [low, high], "n": total}


def source_binding(records: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The shares of answers for the named source and for another source (with 95% Wilson intervals) on the items
    of `records` whose named source's answer differs from another source's, and the name-blind expectation of the
    first; None when no record is such an item."""
    by_id = {item["sample_id"]: item for item in items}
    named = another = 0
    name_blind = 0.0
    total = 0
    for record in records:
        item = by_id.get(record["sample_id"])
        answers = answers_per_source(item) if item is not None else None
        if answers is None:
            continue
        index, letters = answers
        target = letters[index]
        if target is None or all(letter == target for letter in letters):
            continue
        total += 1
        predicted = record["predicted_letter"]
        named += predicted == target
        another += predicted != target and predicted in letters
        name_blind += letters.count(target) / len(letters)
    if total == 0:
        return None
    return {
        "items": total,
        "named": _share(named, total),
        "another_source": _share(another, total),
        "name_blind": name_blind / total,
    }


def binding_markdown(binding: Mapping[str, Mapping[str, Any] | None], labels: Mapping[str, str]) -> list[str]:
    """Markdown lines of source binding side by side: one column per entry of `binding` that has items (named by
    `labels`, default the key), rows for the named sound and another sound, and the name-blind share."""
    lines = [
        "## Source binding: the named sound, or another one it hears?",
        "",
        "On a direction question about one named sound in a scene of several, answering for whichever sound is heard "
        "best is often right by luck. On the items where another sound of the scene has another answer: how often "
        "each line answers for the named sound, and how often for another sound of the scene instead.",
        "",
    ]
    names = [name for name, value in binding.items() if value]
    if not names:
        return [*lines, "The benchmark has no such item."]
    lines += [
        "| answered for | " + " | ".join(labels.get(name, name) for name in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label in (("named", "the named sound"), ("another_source", "another sound of the scene")):
        cells = []
        for name in names:
            share = binding[name][key]
            low, high = share["ci95"]
            cells.append(f"{100 * share['share']:.1f} ({100 * low:.1f}-{100 * high:.1f}), n={share['n']}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    name_blind = 100 * binding[names[0]]["name_blind"]
    return [
        *lines,
        "",
        f"A perfect localiser that ignores the name answers for the named sound on {name_blind:.1f}% of these items.",
    ]
