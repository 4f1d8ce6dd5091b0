"""Wall-clock budgets for any stage: HF trainers stop at `max_steps`; this callback also stops them at a deadline."""

from __future__ import annotations

import logging
import time

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

logger = logging.getLogger(__name__)


class TimeBudgetCallback(TrainerCallback, ExportableState):
    """Stop training once `seconds` of training time are spent (checked after every optimiser step, so a run ends
    at most one step late). The time spent is saved with each checkpoint, so a resumed run gets only what is left.

    `stopped` says whether the budget, not `max_steps`, ended the run.
    """

    def __init__(self, seconds: float):
        if seconds <= 0:
            raise ValueError(f"A time budget must be positive, got {seconds} s.")
        self.seconds = float(seconds)
        self.spent_seconds = 0.0  # training time of the runs before this one (restored from the checkpoint)
        self.stopped = False
        self._started: float | None = None

    def elapsed(self) -> float:
        """Training seconds spent so far, earlier runs included."""
        return self.spent_seconds + (time.monotonic() - self._started if self._started is not None else 0.0)

    def state(self) -> dict:
        return {"args": {"seconds": self.seconds}, "attributes": {"spent_seconds": self.elapsed()}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__)
        if saved:  # resuming: TrainerState was read from the checkpoint
            saved = saved[0] if isinstance(saved, list) else saved
            self.spent_seconds = float(saved["attributes"]["spent_seconds"])
        self._started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.elapsed() >= self.seconds:
            self.stopped = True
            control.should_training_stop = True
            budget, step, steps = self.seconds, state.global_step, state.max_steps
            logger.info("time budget %.0f s spent at step %d of %d: stopping", budget, step, steps)
