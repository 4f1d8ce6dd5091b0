"""Evaluation: ASA benchmark runner, controls, baselines, the spatial encoder's SELD scores, reports."""

# What `hf-spatial evaluate` writes and the model card reads; here, not in the heavy `report`, for `hf_spatial.hub`.
EVAL_RESULTS_FILE = "eval_results.json"
