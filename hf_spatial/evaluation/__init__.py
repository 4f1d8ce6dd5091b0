"""Evaluation: ASA benchmark runner, controls, baselines, SELD metrics, reports."""
