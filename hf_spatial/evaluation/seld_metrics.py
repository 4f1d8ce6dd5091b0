"""The DCASE SELD metrics moved to `hf_spatial.seld.metrics` (training and evaluation share them); this name stays
for `scripts/bench_encoder.py`, which imports it."""

from hf_spatial.seld.metrics import evaluate_csv_folders

__all__ = ["evaluate_csv_folders"]
