"""STARSS23-layout conversion and encoder adaptation, on a fake STARSS23 folder made from simulated scenes whose
ground truth (`SceneSpec`) is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hf_spatial.acoustics import procedural
from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.data.dcase_csv import SELDEvent, format_dcase_csv, parse_dcase_csv, write_dcase_csv
from hf_spatial.data.schema import read_foa
from hf_spatial.data.starss23 import (
    STARSS23_CLASSES,
    convert_starss23,
    dcase_labels_have_distance,
    find_recordings,
    recorded_class_names,
)
from hf_spatial.seld.labels import reference_labels
from hf_spatial.training.seld_targets import dcase_targets, scene_targets, slot_loss
from tests.conftest import run_cli

CLASSES = list(procedural.SYNTHESISERS)
FOLDS = {"dev-train-sim": "fold1", "dev-test-sim": "fold2"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Two simulated 6 s scenes: [(SceneSpec, foa (4, T))]."""
    from datasets import Audio, load_dataset

    from hf_spatial.data.simulate import simulate

    folder = simulate(tmp_path_factory.mktemp("sim") / "scenes", num_scenes=2, duration=6.0, progress=False)
    rows = load_dataset(str(folder), split="train").cast_column("audio", Audio(decode=False))
    return [(SceneSpec.from_json(row["scene"]), read_foa(row["audio"])) for row in rows]


def write_recording(root: Path, fold: str, name: str, foa: np.ndarray, scene: SceneSpec | None, rate=24000) -> None:
    wav = root / "foa_dev" / fold / f"{name}.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(wav, foa.T, rate, subtype="PCM_24")
    if scene is not None:  # STARSS23 2024 metadata: distances in centimetres
        write_dcase_csv(
            root / "metadata_dev" / fold / f"{name}.csv", reference_labels(scene, CLASSES), distance_unit="cm"
        )


def recording_name(index: int) -> str:
    return f"fold{index + 1}_room{index + 21}_mix{index + 1:03d}"


@pytest.fixture(scope="module")
def starss_root(simulated, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("starss") / "STARSS23"
    for index, (fold, (scene, foa)) in enumerate(zip(FOLDS, simulated, strict=True)):
        write_recording(root, fold, recording_name(index), foa, scene)
    return root


@pytest.fixture(scope="module")
def converted(starss_root, tmp_path_factory) -> Path:
    return convert_starss23(starss_root, tmp_path_factory.mktemp("out") / "starss", class_names=CLASSES, progress=False)


def _load(folder: Path, split: str):
    from datasets import Audio, load_dataset

    return load_dataset(str(folder), split=split).cast_column("audio", Audio(decode=False))


def test_starss23_classes_are_the_dcase_2023_index_order():
    assert len(STARSS23_CLASSES) == 13
    assert STARSS23_CLASSES[0] == "femaleSpeech" and STARSS23_CLASSES[6] == "footsteps"
    assert STARSS23_CLASSES[-1] == "knock"


def test_convert_round_trip(converted, simulated):
    from hf_spatial.data.schema import COLUMNS

    for split, index in (("train", 0), ("test", 1)):
        rows = _load(converted, split)
        scene, foa = simulated[index]
        assert list(rows.column_names) == [*COLUMNS, "dcase_labels"]
        assert rows["scene_id"] == [f"{recording_name(index)}-0000", f"{recording_name(index)}-0001"]  # 5 s + 1 s
        reference = reference_labels(scene, CLASSES)
        for segment, row in enumerate(rows):
            audio = read_foa(row["audio"])
            assert audio.shape == (4, 120000 if segment == 0 else 24000)
            np.testing.assert_allclose(audio, foa[:, segment * 120000 : segment * 120000 + audio.shape[1]], atol=1e-6)
            assert row["split"] == split and row["scene"] == "" and math.isnan(row["rt60"])
            assert row["room_id"] == f"fold{index + 1}_room{index + 21}"
            expected = {frame - 50 * segment: events for frame, events in reference.items() if 50 * segment <= frame}
            expected = {frame: events for frame, events in expected.items() if frame < 50}
            labels = parse_dcase_csv(row["dcase_labels"])
            assert sorted(labels) == sorted(expected)  # frames re-based to the segment start
            for frame, events in expected.items():
                for got, want in zip(labels[frame], events, strict=True):
                    assert got[:4] == want[:4] and got.distance == pytest.approx(want.distance, abs=1e-9)
            present = {event.source_idx for events in expected.values() for event in events}
            assert row["num_sources"] == len(present)
            assert row["labels"] == sorted({scene.sources[i].label for i in present})
    assert recorded_class_names(converted) == CLASSES
    card = (converted / "README.md").read_text()
    assert "dcase_labels" in card and "licence" in card.lower()


def test_conversion_is_deterministic_and_resumes(starss_root, converted, tmp_path):
    again = convert_starss23(starss_root, tmp_path / "again", class_names=CLASSES, progress=False)
    for shard in sorted((converted / "data").glob("*.parquet")):
        assert (again / "data" / shard.name).read_bytes() == shard.read_bytes()
    shard = next((again / "data").glob("test-*.parquet"))
    shard.unlink()  # as if killed before the last shard
    convert_starss23(starss_root, again, class_names=CLASSES, progress=False)
    assert shard.read_bytes() == (converted / "data" / shard.name).read_bytes()
    assert (again / "README.md").read_bytes() == (converted / "README.md").read_bytes()
    with pytest.raises(FileExistsError, match="other parameters"):
        convert_starss23(starss_root, again, segment_seconds=2.0, class_names=CLASSES, progress=False)


def test_collator_targets_from_dcase_labels_match_the_scene(starss_root, simulated, tmp_path):
    from hf_spatial import FOAFeatureExtractor
    from hf_spatial.training.encoder import SeldCollator

    folder = convert_starss23(starss_root, tmp_path / "whole", segment_seconds=6.0, class_names=CLASSES, progress=False)
    collator = SeldCollator(FOAFeatureExtractor(), CLASSES, num_slots=3)
    for split, (scene, _) in zip(("train", "test"), simulated, strict=True):
        (row,) = list(_load(folder, split))
        batch = collator([row])
        got = {
            key.removeprefix("target_"): value[0].numpy() for key, value in batch.items() if key.startswith("target_")
        }
        want = scene_targets(scene, CLASSES, 3, got["activity"].shape[-1])
        assert got["count"] == want["count"] == len(scene.sources)
        np.testing.assert_array_equal(got["presence"], want["presence"])
        assert got["rt60_mask"] == 0 and want["rt60_mask"] == 1
        np.testing.assert_array_equal(got["distance_mask"], np.ones(3))
        # Slots are unordered: pair them by class and direction.
        order_got = np.lexsort((got["direction"][:, 0], got["class_index"]))
        order_want = np.lexsort((want["direction"][:, 0], want["class_index"]))
        np.testing.assert_array_equal(got["class_index"][order_got], want["class_index"][order_want])
        np.testing.assert_allclose(got["direction"][order_got], want["direction"][order_want], atol=1e-6)
        np.testing.assert_allclose(got["distance"][order_got], want["distance"][order_want], rtol=1e-6)
        # 100 ms label frames vs exact onsets: at most a few 40 ms tokens differ at each edge.
        edges = np.abs(got["activity"][order_got] - want["activity"][order_want]).sum(axis=1)
        assert edges.max() <= 6 and got["activity"].sum() > 0


def test_dcase_targets_cap_slots_and_mask_unknown_distances():
    # Four tracks, 2023 format (no distances): the three longest-active fill the slots.
    labels = {
        frame: [SELDEvent(cls, 0, 10.0 * cls, 0.0) for cls, length in enumerate((10, 3, 20, 15)) if frame < length]
        for frame in range(20)
    }
    targets = dcase_targets(labels, ["a", "b", "c", "d"], num_slots=3, num_tokens=50)
    assert targets["count"] == 3 and targets["presence"].tolist() == [1, 1, 1]
    assert sorted(targets["class_index"].tolist()) == [0, 2, 3]
    assert targets["distance_mask"].tolist() == [0, 0, 0] and targets["rt60_mask"] == 0
    assert not dcase_labels_have_distance(["", format_dcase_csv(labels)])  # evaluated with DCASE 2023 metrics
    assert dcase_labels_have_distance(["", "0,1,0,10,0,150\n"])
    slot = targets["class_index"].tolist().index(0)
    assert targets["activity"][slot].sum() == 25  # 10 frames of 100 ms = 25 tokens of 40 ms

    class Outputs:  # a prediction with wrong distances and RT60
        slot_presence_logits = torch.zeros(1, 3)
        slot_class_logits = torch.zeros(1, 3, 4)
        slot_direction = torch.nn.functional.normalize(torch.ones(1, 3, 3), dim=-1)
        slot_distance = torch.full((1, 3), 7.0)
        slot_activity_logits = torch.zeros(1, 3, 50)
        attention_mask = torch.ones(1, 50)
        count_logits = torch.zeros(1, 4)
        rt60 = torch.tensor([3.0])
        token_accdoa = torch.zeros(1, 50, 4, 3)

    batch = {key: torch.as_tensor(value)[None] for key, value in targets.items()}
    _, parts = slot_loss(Outputs(), batch)
    assert parts["distance"] == 0 and parts["rt60"] == 0
    batch["distance_mask"] = torch.ones(1, 3)
    batch["rt60_mask"] = torch.ones(1)
    _, parts = slot_loss(Outputs(), batch)
    assert parts["distance"] > 1 and parts["rt60"] == pytest.approx(3.0)


def test_encoder_stage_trains_on_a_converted_folder(converted, tmp_path):
    from hf_spatial.training.stages import run_stage

    out = tmp_path / "encoder"
    run_stage(
        "encoder",
        "tiny",
        ["--dataset_dir", str(converted), "--output_dir", str(out), "--max_steps", "2", "--save_steps", "2",
         "--per_device_train_batch_size", "2", "--report_to", "none"],
    )  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["spatial_class_names"] == CLASSES  # the folder's recorded class list
    assert sorted(path.stem for path in (out / "seld" / "ref").glob("*.csv")) == [
        f"{recording_name(1)}-0000",
        f"{recording_name(1)}-0001",
    ]
    assert (out / "seld" / "seld_metrics_2024.md").is_file()


# ------------------------------------------------------------------------------------------- bad inputs
def test_stereo_recording_is_refused(simulated, tmp_path):
    scene, foa = simulated[0]
    write_recording(tmp_path, "dev-train-x", "fold1_room1_mix001", foa[:2], scene)
    with pytest.raises(ValueError, match=r"expected 4-channel.*stereo"):
        convert_starss23(tmp_path, tmp_path / "out", class_names=CLASSES, progress=False)


def test_missing_metadata_and_eval_only_layouts_are_explained(simulated, tmp_path):
    _, foa = simulated[0]
    write_recording(tmp_path, "dev-train-x", "fold1_room1_mix001", foa, None)
    with pytest.raises(FileNotFoundError, match="no metadata_dev"):
        find_recordings(tmp_path)
    (tmp_path / "foa_dev").rename(tmp_path / "foa_eval")
    with pytest.raises(FileNotFoundError, match="labels are not distributed"):
        find_recordings(tmp_path)


def test_unmatched_files_are_listed_or_skipped(simulated, tmp_path):
    scene, foa = simulated[0]
    write_recording(tmp_path, "dev-train-x", "fold1_room1_mix001", foa, scene)
    write_recording(tmp_path, "dev-train-x", "fold1_room1_mix002", foa, None)
    write_dcase_csv(tmp_path / "metadata_dev" / "dev-train-x" / "fold1_room1_mix003.csv", {0: [SELDEvent(0, 0, 0, 0)]})
    with pytest.raises(ValueError, match=r"2 file\(s\) without a partner(.|\n)*mix002.wav(.|\n)*mix003.csv"):
        find_recordings(tmp_path)
    assert [r.name for r in find_recordings(tmp_path, skip_unmatched=True)] == ["fold1_room1_mix001"]


def test_unknown_fold_names_need_a_mapping(simulated, tmp_path):
    scene, foa = simulated[0]
    write_recording(tmp_path, "my-fold", "take1", foa, scene)
    with pytest.raises(ValueError, match="split-by-fold my-fold=train"):
        find_recordings(tmp_path)
    (recording,) = find_recordings(tmp_path, {"my-fold": "test"})
    assert recording.split == "test" and recording.room_id == "my-fold"


def test_other_sample_rates_are_resampled_or_refused(simulated, tmp_path):
    from scipy.signal import resample_poly

    scene, foa = simulated[0]
    write_recording(
        tmp_path, "dev-train-x", "fold1_room1_mix001", resample_poly(foa, 2, 1, axis=-1) * 0.5, scene, 48000
    )
    with pytest.raises(ValueError, match="48000 Hz, expected 24000 Hz"):
        convert_starss23(tmp_path, tmp_path / "refused", resample=False, class_names=CLASSES, progress=False)
    out = convert_starss23(tmp_path, tmp_path / "out", class_names=CLASSES, progress=False)
    first = read_foa(_load(out, "train")[0]["audio"])
    assert first.shape == (4, 120000)
    middle = slice(1000, 119000)  # away from the filter's edge effects
    np.testing.assert_allclose(first[:, middle], 0.5 * foa[:, middle], atol=0.02)


def test_corrupt_wav_is_refused(simulated, tmp_path):
    scene, foa = simulated[0]
    write_recording(tmp_path, "dev-train-x", "fold1_room1_mix001", foa, scene)
    (tmp_path / "foa_dev" / "dev-train-x" / "fold1_room1_mix001.wav").write_bytes(b"RIFF not really")
    with pytest.raises(ValueError, match="corrupt"):
        convert_starss23(tmp_path, tmp_path / "out", class_names=CLASSES, progress=False)


def test_cli_converts_and_reports_errors_in_one_line(starss_root, tmp_path):
    # The fake recordings' class indices (< 8) are valid STARSS23 indices, so the CLI's default classes apply.
    result = run_cli("convert", "starss23", "--root", str(starss_root), "--out", str(tmp_path / "out"), "--no-progress")
    assert "Wrote" in result.stdout
    assert recorded_class_names(tmp_path / "out") == list(STARSS23_CLASSES)
    result = run_cli("convert", "starss23", "--root", str(tmp_path), "--out", str(tmp_path / "out2"), check=False)
    assert result.returncode == 2
    assert "has no foa_dev folder" in result.stderr and "Traceback" not in result.stderr
