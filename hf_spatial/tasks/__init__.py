"""Audio scene analysis (ASA) tasks: questions from `SceneSpec`, the one answer parser, scoring and rewards.

```python
from hf_spatial.tasks import generate_questions, parse_answer, describe_scene
items = generate_questions(scene, seed=0)            # QA rows (ARCHITECTURE.md, "QA dataset")
parse_answer("The answer is (B).", ["dog", ...])      # -> "B"
```
"""

from hf_spatial.tasks.caption import describe_scene
from hf_spatial.tasks.parsing import parse_answer
from hf_spatial.tasks.prompting import format_prompt
from hf_spatial.tasks.registry import TASKS, TaskSpec, generate_questions, register_task, resolve_tasks, task_names
from hf_spatial.tasks.scoring import markdown_table, score, summarize, wilson_interval
from hf_spatial.tasks.vocabulary import label_frequencies, label_phrase

__all__ = [
    "TASKS",
    "TaskSpec",
    "describe_scene",
    "format_prompt",
    "generate_questions",
    "label_frequencies",
    "label_phrase",
    "markdown_table",
    "parse_answer",
    "register_task",
    "resolve_tasks",
    "score",
    "summarize",
    "task_names",
    "wilson_interval",
]
