"""`hf-spatial env`: report the installed stack and the optional tools the package can use."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import shutil
from pathlib import Path

PACKAGES = (
    "hf-spatial",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "huggingface-hub",
    "pyroomacoustics",
    "soundfile",
    "numpy",
    "scipy",
)
# Tools used when present: espeak-ng for the procedural speech-like sources, apt-get/dpkg-deb for the Debian
# sound bank.
TOOLS = ("espeak-ng", "apt-get", "dpkg-deb")


def cpu_model() -> str:
    """The CPU's model name (what `lscpu` prints as "Model name"): step rates differ several times between machines
    of one kind, so every timing is quoted with it."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def collect() -> dict[str, object]:
    """Versions of the stack, optional tools, and known-bad combinations."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    problems = []
    if importlib.util.find_spec("torchaudio") is not None:
        problems.append(
            "torchaudio is installed: its PyPI wheel is a CUDA build that breaks `import transformers` next to a "
            "CPU torch. hf-spatial does not need it; `pip uninstall torchaudio` unless it matches your torch."
        )
    missing = [name for name in PACKAGES[1:] if versions[name] is None]
    if missing:
        problems.append(f"missing packages: {', '.join(missing)}; run `pip install -e .` in the repository.")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "packages": versions,
        "tools": {tool: shutil.which(tool) for tool in TOOLS},
        "problems": problems,
    }


def run(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"python {report['python']} on {report['platform']}, CPU {report['cpu']}")
        for name, version in report["packages"].items():
            print(f"  {name:<16} {version or 'MISSING'}")
        for tool, path in report["tools"].items():
            print(f"  {tool:<16} {path or 'not found (optional)'}")
        for problem in report["problems"]:
            print(f"problem: {problem}")
    return 1 if report["problems"] else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("env", help="show the installed stack and optional tools")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    parser.set_defaults(func=run)
