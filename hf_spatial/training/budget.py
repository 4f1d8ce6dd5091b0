"""Wall-clock budgets for any stage: HF trainers stop at `max_steps`; this callback also stops them at a deadline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

logger = logging.getLogger(__name__)


class TimeBudgetCallback(TrainerCallback, ExportableState):
    """Stop training once `seconds` of training time are spent (checked after every optimiser step, so a run ends
    at most one step late). The time spent is saved with each checkpoint, so a resumed run gets only what is left.

    With `decay_lr`, the learning rate schedule's factor is multiplied by the fraction of the budget left, so the
    rate reaches zero at the deadline whatever the step rate (the schedule must be a `LambdaLR`, as every
    `lr_scheduler_type` without restarts is).

    `stopped` says whether the budget, not `max_steps`, ended the run.
    """

    def __init__(self, seconds: float, decay_lr: bool = False):
        if seconds <= 0:
            raise ValueError(f"A time budget must be positive, got {seconds} s.")
        self.seconds = float(seconds)
        self.decay_lr = decay_lr
        self.spent_seconds = 0.0  # training time of the runs before this one (restored from the checkpoint)
        self.stopped = False
        self._started: float | None = None

    def elapsed(self) -> float:
        """Training seconds spent so far, earlier runs included."""
        return self.spent_seconds + (time.monotonic() - self._started if self._started is not None else 0.0)

    def state(self) -> dict:
        args = {"seconds": self.seconds, "decay_lr": self.decay_lr}
        return {"args": args, "attributes": {"spent_seconds": self.elapsed()}}

    def fraction_left(self) -> float:
        """The share of the budget not yet spent, in [0, 1]."""
        return max(0.0, 1.0 - self.elapsed() / self.seconds)

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__)
        if saved:  # resuming: TrainerState was read from the checkpoint
            saved = saved[0] if isinstance(saved, list) else saved
            self.spent_seconds = float(saved["attributes"]["spent_seconds"])
        self._started = time.monotonic()
        if self.decay_lr:
            if not isinstance(lr_scheduler, LambdaLR):
                raise ValueError(
                    f"decay_lr_by_time scales a LambdaLR schedule, got {type(lr_scheduler).__name__}; use an "
                    "lr_scheduler_type such as constant_with_warmup or linear."
                )
            # The scheduler evaluates its factors at every step: each now also reads the clock.
            lr_scheduler.lr_lambdas = [_time_decayed(factor, self) for factor in lr_scheduler.lr_lambdas]

    def on_step_end(self, args, state, control, **kwargs):
        if self.elapsed() >= self.seconds:
            self.stopped = True
            control.should_training_stop = True
            budget, step, steps = self.seconds, state.global_step, state.max_steps
            logger.info("time budget %.0f s spent at step %d of %d: stopping", budget, step, steps)


def _time_decayed(factor: Callable[[int], float], budget: TimeBudgetCallback) -> Callable[[int], float]:
    """A `LambdaLR` factor times the share of `budget` left (a plain function: `LambdaLR.state_dict` skips those,
    so checkpoints hold no clock, and a resumed run's budget callback wraps its schedule again)."""

    def decayed(step: int) -> float:
        return factor(step) * budget.fraction_left()

    return decayed
