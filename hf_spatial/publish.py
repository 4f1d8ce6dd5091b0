"""`hf-spatial publish model|dataset|benchmark PATH --repo-id USER/NAME`: stage, validate, upload to the Hub."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from hf_spatial import hub

    options = {}
    if args.card:
        options["card"] = args.card
    if args.kind == "model":
        options.update(base_model=args.base_model, datasets=args.dataset or None, results=args.results)
        if args.license:
            options["license"] = args.license
    staged, url = hub.publish(
        args.kind,
        args.path,
        args.repo_id,
        private=args.private,
        dry_run=args.dry_run,
        staging_dir=args.staging_dir,
        **options,
    )
    print(staged.describe())
    if url is None:
        print(f"dry run: nothing uploaded; inspect {staged.folder}, then run again without --dry-run")
    else:
        print(f"uploaded to {url}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="stage, validate and upload a model, dataset or benchmark to the Hugging Face Hub",
        description="Stage exactly what will be uploaded, validate it (loads with from_pretrained/load_dataset, "
        "card YAML valid, no tokens or local paths), print the file list, then upload unless --dry-run. "
        "Authentication: `hf auth login` or HF_TOKEN.",
    )
    parser.add_argument("kind", choices=("model", "dataset", "benchmark"))
    parser.add_argument("path", help="save_pretrained/checkpoint folder, simulated dataset folder or TWNM benchmark")
    parser.add_argument("--repo-id", required=True, help="USER/NAME (or ORG/NAME) of the Hub repo")
    parser.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    parser.add_argument("--dry-run", action="store_true", help="stage and validate only; upload nothing")
    parser.add_argument("--staging-dir", help="where to stage (default: a fresh temporary folder)")
    parser.add_argument("--card", help="use this README.md as the card instead of rendering one")
    model = parser.add_argument_group("model card")
    model.add_argument("--base-model", help="Hub id of the base model (default: from training_stages.json)")
    model.add_argument("--dataset", action="append", help="Hub id of a training dataset (repeatable)")
    model.add_argument("--results", help="evaluation results JSON (default: PATH/eval_results.json if present)")
    model.add_argument("--license", help="licence id for the model card (default apache-2.0)")
    parser.set_defaults(func=run)
