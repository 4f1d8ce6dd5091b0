"""The task registry and `generate_questions`: one function per task type turns a scene into a draft item.

A generator returns a `Draft` (question, four option texts with the gold first, open answer, evidence) or
None when the task is ill-posed for the scene. This module shuffles the options with the seed, assigns
letters and fills the contract fields of a QA row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.tasks.context import SceneContext
from hf_spatial.tasks.options import LETTERS, NUM_OPTIONS
from hf_spatial.tasks.vocabulary import as_weights


@dataclass
class Draft:
    """An unshuffled item: `options[0]` is the gold answer text."""

    question: str
    options: list[str]
    open_answer: str
    evidence: dict[str, list[float]] = field(default_factory=dict)
    # What the question is about (source indices, turn, sector...): with the task's solver, this answers the
    # same question for a modified scene (`solving.answer_for_scene`).
    params: dict[str, Any] = field(default_factory=dict)


Generator = Callable[[SceneContext, np.random.Generator], Draft | None]
# A solver answers a drafted question for any scene: the gold option text, a `NearestValue` for numeric
# options, or None when the question has no answer in that scene.
Solver = Callable[[SceneContext, dict[str, Any]], Any]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task type: `name` is `l{level}_{what}`."""

    name: str
    level: int
    description: str
    generate: Generator
    solve: Solver
    uses_direction: bool = False  # the answer depends on source directions (the intensity baseline applies)


TASKS: dict[str, TaskSpec] = {}
# The benchmark's three levels (the paper's audio scene analysis hierarchy).
LEVEL_NAMES = {1: "atomic perception", 2: "relational integration", 3: "cognitive reasoning"}
DRAWS_PER_QUESTION = 4  # `generate_questions`: draws tried per question asked for, before it settles for fewer


def register_task(
    name: str, level: int, description: str, solve: Solver, uses_direction: bool = False
) -> Callable[[Generator], Generator]:
    """Decorator adding a generator to `TASKS` under `name`, with the solver its gold answers come from."""
    if not name.startswith(f"l{level}_"):
        raise ValueError(f"Task name {name!r} must start with 'l{level}_'.")

    def decorator(function: Generator) -> Generator:
        if name in TASKS:
            raise ValueError(f"Task {name!r} is registered twice.")
        TASKS[name] = TaskSpec(name, level, description, function, solve, uses_direction)
        return function

    return decorator


def _ensure_registered() -> None:
    # The task modules register themselves on import.
    from hf_spatial.tasks import level1, level2, level3  # noqa: F401


def task_names(levels: Sequence[int] | None = None) -> list[str]:
    """Registered task names (optionally of some levels), ordered by level then name.

    Not registration order: that depends on which task module some caller imported first, and the order of tasks
    decides which questions a benchmark selects, so it must not depend on the process's import history.
    """
    _ensure_registered()
    names = sorted(TASKS, key=lambda name: (TASKS[name].level, name))
    return [name for name in names if levels is None or TASKS[name].level in levels]


def resolve_tasks(tasks: Sequence[str] | None) -> list[str]:
    """Validate task names; accepts level shorthands 'l1', 'l2', 'l3'. None means every task."""
    _ensure_registered()
    if tasks is None:
        return task_names()
    names: list[str] = []
    for item in tasks:
        if item in TASKS:
            names.append(item)
        elif item in ("l1", "l2", "l3"):
            names.extend(task_names([int(item[1])]))
        else:
            raise ValueError(f"Unknown task {item!r}; known tasks: {', '.join(task_names())} (or l1, l2, l3).")
    return list(dict.fromkeys(names))


def task_rng(seed: int, scene_id: str, task: str, draw: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, scene, task, draw): adding a task never changes another's items,
    and asking for more questions per task never changes the first ones."""
    key = f"{seed}\x00{scene_id}\x00{task}" + (f"\x00{draw}" if draw else "")
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def finalize(
    draft: Draft, scene: SceneSpec, task: TaskSpec, rng: np.random.Generator, index: int = 0
) -> dict[str, Any]:
    """Shuffle a draft's options with `rng` and build the QA row of the contract (`index`: the question's number
    among its task's questions about the scene; the first keeps the plain `scene-task` sample id)."""
    if len(draft.options) != NUM_OPTIONS or len(set(draft.options)) != NUM_OPTIONS:
        raise RuntimeError(f"Task {task.name} produced options that are not four distinct texts: {draft.options}")
    order = rng.permutation(NUM_OPTIONS)
    options = [draft.options[i] for i in order]
    gold_letter = LETTERS[int(np.flatnonzero(order == 0)[0])]
    return {
        "sample_id": f"{scene.scene_id}-{task.name}" + (f"-{index}" if index else ""),
        "scene_id": scene.scene_id,
        "question": draft.question,
        **{f"option_{letter.lower()}": text for letter, text in zip(LETTERS, options, strict=True)},
        "answer_letter": gold_letter,
        "answer_text": draft.options[0],
        "level": task.level,
        "task": task.name,
        "open_answer": draft.open_answer,
        "evidence": json.dumps(draft.evidence, sort_keys=True),
        "params": json.dumps(draft.params, sort_keys=True),
    }


def generate_questions(
    scene: SceneSpec,
    seed: int,
    tasks: Sequence[str] | None = None,
    *,
    vocabulary: Sequence[str] | Mapping[str, float] | None = None,
    priors: Mapping[str, np.ndarray] | None = None,
    questions_per_task: int = 1,
) -> list[dict[str, Any]]:
    """Well-posed questions about `scene` for the given tasks (default: every registered task): per task, up to
    `questions_per_task` about different things (sources, pairs, turns: different `params`), fewer when the scene
    has fewer (a one-source scene has one sector question). More than one multiplies the training questions a
    simulated scene yields, at no simulation cost.

    `vocabulary` gives the labels used as absent-class distractors, ideally with the frequencies at which
    labels occur in the dataset (`vocabulary.label_frequencies`), so that no label is a likelier answer from
    text alone; None uses the Debian sound bank classes, uniformly. `priors` (`priors.compute_priors` over the
    dataset's scenes) makes numeric distractors quartiles of each quantity's distribution, so no value is a
    likelier answer from text alone. Same scene, seed, vocabulary and priors give the same items.
    """
    if questions_per_task < 1:
        raise ValueError(f"questions_per_task must be at least 1, got {questions_per_task}.")
    context = SceneContext(scene, as_weights(vocabulary), dict(priors or {}))
    items = []
    for name in resolve_tasks(tasks):
        spec = TASKS[name]
        asked: set[str] = set()
        # Generators pick what to ask at random: a few more draws than questions find the scene's other subjects.
        for draw in range(DRAWS_PER_QUESTION * questions_per_task):
            if len(asked) == questions_per_task:
                break
            rng = task_rng(seed, scene.scene_id, name, draw)
            draft = spec.generate(context, rng)
            if draft is None:
                break  # ill-posed for the scene (or this draw): stop, so that one question per task is the first draw
            subject = json.dumps(draft.params, sort_keys=True)
            if subject not in asked:
                items.append(finalize(draft, scene, spec, rng, index=len(asked)))
                asked.add(subject)
    return items
