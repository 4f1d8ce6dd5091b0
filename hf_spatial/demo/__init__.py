"""`hf-spatial demo`: the whole system end to end on a CPU in about a quarter of an hour.

Steps (each one a public API of the package, also runnable alone with the other subcommands):

1. sources: real recordings from Debian packages (`hf-spatial sources fetch-debian --packages small`) when
   `apt-get download` works, procedural sounds otherwise (`--sources auto`, the default, says which and why);
2. simulate a training set of FOA scenes (`hf-spatial simulate`) and its questions (`hf-spatial questions`), and a
   held-out benchmark from test rooms and test clips only, checked for leaks against the training set
   (`hf-spatial benchmark build`);
3. the curriculum stages (`hf-spatial train`: align -> sft -> grpo) on a tiny SpatialQwenAudio built locally around
   the shipped pretrained spatial encoder (frozen; `--fine-tune-encoder` runs the encoder stage on it first), with
   step budgets that fit `--minutes`; sft runs twice, atomic perception first (`--tasks l1_direction_sector`), then
   every scored task;
4. evaluation on the benchmark (`hf-spatial evaluate`): the model with the no_audio, mono and spatial_zeroed
   controls; the cascade baseline (the encoder's slots as text for the same language model); the encoder readout
   (the encoder's detections answering alone, no language model, no ground truth); the spatial encoder's
   own DCASE 2024 SELD metrics and direction error beside the classical active-intensity estimator; and two
   classical lines: intensity + true source identity (an oracle: told which estimate is which sound) and intensity
   with no ground truth (single-source items only, shown beside the model on the same items); and source binding
   (`hf_spatial.evaluation.binding`: on multi-source questions about one named sound, answers for that sound vs
   for another sound of the scene, for the model, the readout and the oracle);
5. a report folder: `demo_results.json`, `demo_report.md` with the tables, plots, the evaluation reports, and the
   final model (`OUT/model`, loads with `AutoModelForMultimodalLM.from_pretrained`).

The demo trains and scores the L1 and L2 direction/relation tasks (`DEMO_TASKS`): the questions a model that hears
only W (mono) cannot answer above chance. The tiny language model starts random, so it is trained in full (not
LoRA) to answer with the words of the option ("to your left"; `TEXT_ANSWER_INSTRUCTION`): picking a letter needs a
look-up of the option list that a random two-layer model does not learn in minutes (given the answer's words as
text, it stayed at chance on held-out questions after 16,000 training questions). It is scored by multiple-choice
likelihood (`ModelPredictor(scoring="likelihood")`): its answer is the option whose words it finds most likely, so
every answer is an option and a model deaf to direction sits at its text prior (near chance), not at 0%. The second
SFT run is taught that ranking too (`choice_loss_weight`: the multiple-choice loss over each question's options).
Re-running the same command resumes: finished steps are skipped, an interrupted simulation or training stage
continues where it stopped.

Modules: `settings` (tasks, stages, conditions, output paths), `plan` (data sizes and time budgets for this
machine), `steps`, `run` (the driver), `results`, `report` (summary, markdown, plots), `cli`.
"""

from hf_spatial.demo.cli import register
from hf_spatial.demo.plan import DemoPlan
from hf_spatial.demo.run import run_demo
from hf_spatial.demo.settings import (
    AFTER_SFT_CONDITIONS,
    DEFAULT_MINUTES,
    DEMO_RESULTS_FILE,
    DEMO_STAGES,
    DEMO_TASKS,
    MODEL_CONDITIONS,
    PERCEPTION_TASKS,
    REPORT_FILE,
    DemoPaths,
)
from hf_spatial.demo.steps import demo_stages, demo_steps, resolve_sources, stage_config

__all__ = [
    "AFTER_SFT_CONDITIONS",
    "DEFAULT_MINUTES",
    "DEMO_RESULTS_FILE",
    "DEMO_STAGES",
    "DEMO_TASKS",
    "MODEL_CONDITIONS",
    "PERCEPTION_TASKS",
    "REPORT_FILE",
    "DemoPaths",
    "DemoPlan",
    "demo_stages",
    "demo_steps",
    "register",
    "resolve_sources",
    "run_demo",
    "stage_config",
]
