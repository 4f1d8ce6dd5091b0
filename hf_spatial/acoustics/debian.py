"""The Debian sound bank: real labelled recordings shipped inside Debian packages.

`data/debian_sound_manifest.tsv` (package data) lists the clips, their class, package, licence and
transcript. `fetch_debian` downloads only the needed packages with `apt-get download` (no root, nothing
installed), extracts only the listed files with `dpkg-deb --fsys-tarfile | tar -x -T list`, conditions each clip
(24 kHz mono FLAC, trimmed, loudness normalised) into a cache and writes one index per package. A package whose
index exists is never fetched again, so an interrupted fetch resumes where it stopped.

Cache layout: `CACHE/clips/<package>/<installed path>.flac` and `CACHE/index/<package>.tsv`.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).parent / "data" / "debian_sound_manifest.tsv"
# Small packages (about 33 MB of .debs) that already cover footsteps, doors, water, bells, instruments, phones,
# clapping (licences and attribution per clip are in the manifest).
SMALL_PACKAGES = ("sound-theme-freedesktop", "sound-icons", "minetest-data", "hydrogen-data", "sonic-pi-samples")
INDEX_COLUMNS = ("clip_id", "label", "duration", "caption", "licence", "attribution", "path")


def default_cache_dir() -> Path:
    """`$HF_SPATIAL_CACHE/debian`, else `~/.cache/hf_spatial/debian`."""
    root = os.environ.get("HF_SPATIAL_CACHE") or Path.home() / ".cache" / "hf_spatial"
    return Path(root) / "debian"


def manifest_rows() -> list[dict[str, str]]:
    with MANIFEST_PATH.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def resolve_packages(packages: str | Iterable[str]) -> list[str]:
    """ "small", "all" or package names -> package names present in the manifest (error names unknown ones)."""
    available = sorted({row["debian_package"] for row in manifest_rows()})
    if packages == "all":
        return available
    names = list(SMALL_PACKAGES) if packages == "small" else [packages] if isinstance(packages, str) else packages
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(
            f"Unknown Debian sound package(s) {', '.join(unknown)}; the manifest covers: {', '.join(available)} "
            "(or use 'small' / 'all')."
        )
    return sorted(set(names))


def fetch_debian(cache_dir: str | Path | None = None, packages: str | Iterable[str] = "small") -> Path:
    """Download, extract and condition the clips of `packages` into `cache_dir` (skips packages already done)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    names = resolve_packages(packages)
    todo = [name for name in names if not (cache / "index" / f"{name}.tsv").is_file()]
    if todo:
        _require_tools()
    rows = manifest_rows()
    updated = False
    for name in todo:
        logger.info("Debian sound bank: fetching %s", name)
        with tempfile.TemporaryDirectory(dir=_mkdir(cache)) as tmp:
            deb, updated = _download(name, Path(tmp), updated)
            listed = [row for row in rows if row["debian_package"] == name]
            _extract(deb, [row["installed_path"] for row in listed], Path(tmp) / "root")
            _condition_package(name, listed, Path(tmp) / "root", cache)
    return cache


def load_debian_bank(cache_dir: str | Path | None = None, packages: str | Iterable[str] = "small"):
    """A `SourceBank` over the cached clips of `packages`, fetching whatever is missing first."""
    from hf_spatial.acoustics.sources import Clip, SourceBank, clip_split

    cache = fetch_debian(cache_dir, packages)
    names = resolve_packages(packages)
    clips, seen, relabelled = [], set(), []
    for name in names:
        with (cache / "index" / f"{name}.tsv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                # The manifest lists a few files under two classes (lomiri's "Alarm clock" ringtone: music and
                # alarm); a clip has one label, so the first listed wins.
                if row["clip_id"] in seen:
                    relabelled.append(f"{row['clip_id']} ({row['label']})")
                    continue
                seen.add(row["clip_id"])
                clips.append(
                    Clip(
                        clip_id=row["clip_id"],
                        label=row["label"],
                        duration=float(row["duration"]),
                        split=clip_split(row["clip_id"]),
                        caption=row["caption"],
                        licence=row["licence"],
                        attribution=row["attribution"],
                        path=str(cache / row["path"]),
                        conditioned=True,
                    )
                )
    if relabelled:
        logger.warning("Debian sound bank: kept the first of two labels for %s", ", ".join(relabelled))
    if not clips:
        raise ValueError(f"The Debian packages {names} gave no usable clips in {cache}.")
    return SourceBank(clips, f"debian({','.join(names)})")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _require_tools() -> None:
    missing = [tool for tool in ("apt-get", "dpkg-deb", "tar") if shutil.which(tool) is None]
    if missing:
        raise FileNotFoundError(
            f"The Debian sound bank needs {', '.join(missing)} (a Debian/Ubuntu machine). Use --sources procedural or "
            "a folder of clips instead, or copy a filled cache directory from another machine."
        )


def _download(package: str, workdir: Path, updated: bool) -> tuple[Path, bool]:
    """`apt-get download` into workdir; runs `apt-get update` once if the package lists are missing."""
    command = ["apt-get", "download", package]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0 and not updated and "Unable to locate package" in result.stderr:
        logger.info("apt-get does not know %s; running apt-get update once", package)
        update = subprocess.run(["apt-get", "update"], capture_output=True, text=True)
        if update.returncode != 0:
            raise ValueError(f"`apt-get update` failed (needed to find {package}): {update.stderr.strip()[-500:]}")
        updated = True
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"`apt-get download {package}` failed: {result.stderr.strip()[-500:]}")
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if not debs:
        raise ValueError(f"`apt-get download {package}` left no {package}_*.deb in {workdir}.")
    return debs[0], updated


def _extract(deb: Path, installed_paths: list[str], root: Path) -> None:
    """Extract only the listed files; members missing from this package version are reported, not fatal."""
    _mkdir(root)
    members = root.parent / "members.txt"
    members.write_text("".join(f".{path}\n" for path in installed_paths), encoding="utf-8")
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", str(root), "-T", str(members)], stdin=fsys.stdout, capture_output=True)
    fsys.stdout.close()
    if fsys.wait() != 0:
        raise ValueError(f"`dpkg-deb --fsys-tarfile {deb.name}` failed: the download may be corrupt.")
    if tar.returncode not in (0, 2):  # 2: some listed members are absent from this version
        raise ValueError(f"Extracting {deb.name} failed: {tar.stderr.decode(errors='replace')[-500:]}")


def _caption_from_name(installed_path: str) -> str:
    """Fallback caption from the file name ("phone-incoming-call.oga" -> "phone incoming call")."""
    stem = Path(installed_path).name.split(".")[0]
    return " ".join(stem.replace("-", " ").replace("_", " ").split())


def _condition_package(package: str, rows: list[dict[str, str]], root: Path, cache: Path) -> None:
    """Condition each extracted clip to FLAC and write the package index atomically (it marks the package done)."""
    import soundfile as sf

    from hf_spatial.acoustics.audio import load_clip
    from hf_spatial.conventions import SAMPLE_RATE

    entries, skipped = [], []
    for row in rows:
        source = root / row["installed_path"].lstrip("/")
        relative = Path("clips") / package / (row["installed_path"].lstrip("/") + ".flac")
        try:
            signal = load_clip(source)
        except (ValueError, FileNotFoundError) as error:
            skipped.append(f"{row['installed_path']}: {error}")
            continue
        _mkdir((cache / relative).parent)
        sf.write(str(cache / relative), signal, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
        entries.append(
            {
                "clip_id": f"debian/{package}{row['installed_path']}",
                "label": row["class"],
                "duration": f"{len(signal) / SAMPLE_RATE:.6f}",
                "caption": row["text"] or _caption_from_name(row["installed_path"]),
                "licence": row["licence"],
                "attribution": f"Debian package {package}, {row['installed_path']}",
                "path": relative.as_posix(),
            }
        )
    if skipped:
        logger.warning("%s: skipped %d of %d clips: %s", package, len(skipped), len(rows), "; ".join(skipped[:5]))
    index = _mkdir(cache / "index") / f"{package}.tsv"
    partial = index.with_suffix(".tsv.partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(entries)
    os.replace(partial, index)
    logger.info("%s: %d clips conditioned into %s", package, len(entries), cache)


# ------------------------------------------------------------------------------------------------- CLI
def register(subparsers) -> None:
    parser = subparsers.add_parser("sources", help="fetch and inspect sound source banks")
    commands = parser.add_subparsers(dest="sources_command", metavar="ACTION", required=True)
    fetch = commands.add_parser(
        "fetch-debian",
        help="download the Debian sound packages (apt-get download, no root) and condition their clips",
        description="Fetch real labelled recordings from Debian packages into a cache used by --sources debian.",
    )
    fetch.add_argument("--cache", default=None, help=f"cache folder (default {default_cache_dir()})")
    fetch.add_argument(
        "--packages", nargs="+", default=["small"], help="'small' (default, ~33 MB), 'all' (~560 MB) or package names"
    )
    fetch.set_defaults(func=_run_fetch)
    info = commands.add_parser("info", help="summarise a source bank: classes, clips per split, licences")
    info.add_argument(
        "spec", help="procedural[:N], debian, debian:all, debian:PKG,..., a folder or a .csv/.tsv manifest"
    )
    info.add_argument("--cache", default=None, help="Debian sound bank cache")
    info.set_defaults(func=_run_info)


def _packages_arg(values: list[str]) -> str | list[str]:
    return values[0] if values in (["small"], ["all"]) else values


def _run_fetch(args) -> int:
    bank = load_debian_bank(args.cache, _packages_arg(args.packages))
    print(f"{len(bank)} clips of {len(bank.labels)} classes in {args.cache or default_cache_dir()}")
    return 0


def _run_info(args) -> int:
    from hf_spatial.acoustics.sources import SPLITS, SourceBank

    bank = SourceBank.from_spec(args.spec, cache_dir=args.cache)
    print(f"{bank.description}: {len(bank)} clips")
    print(f"{'class':<20}" + "".join(f"{split:>8}" for split in SPLITS))
    for label in bank.labels:
        counts = [sum(c.label == label and c.split == split for c in bank.clips) for split in SPLITS]
        print(f"{label:<20}" + "".join(f"{count:>8}" for count in counts))
    for licence, count in bank.licences().items():
        print(f"licence {licence}: {count} clips")
    return 0
