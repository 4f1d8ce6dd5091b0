"""Fault injection for tests/test_fault_injection.py: run `hf-spatial ARGS` and SIGKILL the process while it writes
`checkpoint-STEP`, leaving that checkpoint as a kill at POINT leaves it.

    python -m tests.checkpoint_kill STEP POINT FRACTION train --stage encoder ...

POINT is where in the Trainer's checkpoint write the kill lands: `start` (the folder made, nothing in it), `weights`,
`optimizer`, `rng` or `state` (`trainer_state.json`, written last): the file being written at that moment is cut
to FRACTION of its length, as a kill in the middle of writing it leaves it.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

from transformers import Trainer, TrainerState

from hf_spatial.cli import main

# point -> (class, method that writes the file, file name, how the checkpoint folder is found from the call)
POINTS = {
    "start": (Trainer, "save_model", None, lambda args: Path(args[1])),
    "weights": (Trainer, "save_model", "model.safetensors", lambda args: Path(args[1])),
    "optimizer": (Trainer, "_save_optimizer_and_scheduler", "optimizer.pt", lambda args: Path(args[1])),
    "rng": (Trainer, "_save_rng_state", "rng_state.pth", lambda args: Path(args[1])),
    "state": (TrainerState, "save_to_json", "trainer_state.json", lambda args: Path(args[1]).parent),
}


def inject(step: int, point: str, fraction: float) -> None:
    owner, name, file_name, folder_of = POINTS[point]
    original = getattr(owner, name)

    @functools.wraps(original)
    def write_then_die(*args, **kwargs):
        folder = folder_of(args)
        if folder.name != f"checkpoint-{step}":
            return original(*args, **kwargs)
        if file_name is None:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            original(*args, **kwargs)
            path = folder / file_name
            path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, write_then_die)


if __name__ == "__main__":
    inject(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]))
    sys.exit(main(sys.argv[4:]))
