"""`hf-spatial demo`: its arguments and the summary it prints."""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_spatial.demo.report import summary_lines
from hf_spatial.demo.run import run_demo
from hf_spatial.demo.settings import DEFAULT_MINUTES, DEMO_RESULTS_FILE, SOURCES_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole system end to end on a CPU: simulate, train the four stages, evaluate, report",
        description=(
            "Simulate FOA training scenes and a held-out benchmark, train a tiny SpatialQwenAudio through the four "
            "curriculum stages, evaluate it with the mono / spatial-zeroed / no-audio controls and the intensity "
            "baseline, and write a report folder. Re-run the same command to resume."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help=f"budget on 2 CPU cores (default {DEFAULT_MINUTES:g})"
    )
    parser.add_argument(
        "--sources", choices=SOURCES_CHOICES, default="auto", help="auto (Debian if fetchable), procedural, debian"
    )
    parser.add_argument("--smallest", action="store_true", help="the smallest run (about a minute): tiny data")
    parser.add_argument(
        "--fine-tune-encoder",
        action="store_true",
        help="train the shipped spatial encoder in an encoder stage first (default: keep it frozen)",
    )
    parser.add_argument("--workers", type=int, default=2, help="simulation processes")
    parser.add_argument("--cache-dir", default=None, help="Debian sound bank cache (default ~/.cache/hf_spatial)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    results = run_demo(
        args.out, args.minutes, args.sources, args.smallest, args.workers, args.cache_dir, args.fine_tune_encoder
    )
    print()
    print("\n".join(summary_lines(results)))
    print()
    print(f"report:    {results['paths']['report']}")
    print(f"results:   {args.out / DEMO_RESULTS_FILE}")
    print(f"plots:     {args.out / 'plots'}")
    print(f"model:     {results['paths']['model']}  (AutoModelForMultimodalLM.from_pretrained)")
    print(f"benchmark: {results['paths']['benchmark']}")
    print(f"time:      {results['seconds']['total (this run)'] / 60:.1f} min")
    return 0
