import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from hf_spatial.acoustics.audio import TARGET_RMS_DBFS, prepare_clip
from hf_spatial.acoustics.sources import SourceBank, clip_split
from hf_spatial.conventions import SAMPLE_RATE


def _tone(seconds: float, sample_rate: int, channels: int = 1, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    tone = level * np.sin(2 * np.pi * 440 * t)
    return np.stack([tone] * channels, axis=1) if channels > 1 else tone


def test_prepare_clip_resamples_downmixes_trims_and_normalises():
    stereo = _tone(1.0, 44100, channels=2)
    padded = np.concatenate([np.zeros((22050, 2)), stereo, np.zeros((44100, 2))])
    clip = prepare_clip(padded, 44100)
    assert clip.dtype == np.float32 and clip.ndim == 1
    assert abs(len(clip) / SAMPLE_RATE - 1.0) < 0.03  # silence trimmed at both ends
    rms_db = 20 * np.log10(np.sqrt(np.mean(clip.astype(np.float64) ** 2)))
    assert abs(rms_db - TARGET_RMS_DBFS) < 0.5


def test_prepare_clip_rejects_silence_and_nan():
    with pytest.raises(ValueError, match="silent"):
        prepare_clip(np.zeros(1000), 16000)
    with pytest.raises(ValueError, match="NaN"):
        prepare_clip(np.full(1000, np.nan), 16000)


def test_procedural_bank_is_deterministic_and_covers_classes():
    bank_a = SourceBank.procedural(seed=3, clips_per_class=2)
    bank_b = SourceBank.procedural(seed=3, clips_per_class=2)
    assert len(bank_a) == 2 * len(bank_a.labels) and {"alarm", "speech", "footsteps"} <= set(bank_a.labels)
    for clip in bank_a.clips:
        assert np.array_equal(bank_a.audio(clip.clip_id), bank_b.audio(clip.clip_id))
        assert clip.caption and clip.licence == "CC0-1.0" and clip.duration > 0.1
    other_seed = SourceBank.procedural(seed=4, clips_per_class=2)
    clip = other_seed.clips[0]
    assert not np.array_equal(other_seed.audio(clip.clip_id)[:100], bank_a.audio(bank_a.clips[0].clip_id)[:100])


def test_procedural_spec_takes_clips_per_class_and_keeps_the_default_clips_where_they_were():
    default, larger = SourceBank.from_spec("procedural"), SourceBank.from_spec("procedural:12")
    assert len(default) == 10 * len(default.labels) and len(larger) == 12 * len(larger.labels)
    # The default bank's clips are the first of the larger one's, with the same audio and split: a larger bank
    # adds training and test clips without moving a test clip into training.
    for clip in default.clips:
        assert larger[clip.clip_id].split == clip.split
        assert np.array_equal(larger.audio(clip.clip_id), default.audio(clip.clip_id))
    for bad in ("procedural:0", "procedural:ten", "procedural:-3"):
        with pytest.raises(ValueError, match="write procedural:N with N clips per class"):
            SourceBank.from_spec(bad)


def test_split_is_a_function_of_clip_id_and_never_leaks():
    bank = SourceBank.procedural(seed=0, clips_per_class=6)
    train, test = bank.split("train"), bank.split("test")
    assert {c.clip_id for c in train.clips}.isdisjoint({c.clip_id for c in test.clips})
    assert len(train) + len(test) == len(bank)
    assert 0.05 < len(test) / len(bank) < 0.4
    # The same clip lands in the same split whatever bank (subset, order) it is in.
    subset = bank.filter(["bell"])
    for clip in subset.clips:
        assert clip.split == clip_split(clip.clip_id) == bank[clip.clip_id].split


def test_folder_bank_reads_classes_and_conditions_audio(tmp_path):
    for label in ("dog", "door"):
        (tmp_path / label).mkdir()
        for i in range(3):
            sf.write(tmp_path / label / f"{i}.wav", _tone(0.5 + 0.1 * i, 44100, channels=2), 44100)
    bank = SourceBank.from_folder(tmp_path)
    assert bank.labels == ["dog", "door"] and len(bank) == 6
    audio = bank.audio(bank.clips[0].clip_id)
    assert audio.ndim == 1 and abs(len(audio) / SAMPLE_RATE - 0.5) < 0.03


def test_manifest_bank_with_captions_and_explicit_split(tmp_path):
    sf.write(tmp_path / "a.flac", _tone(0.4, 16000), 16000)
    sf.write(tmp_path / "b.ogg", _tone(0.6, 22050), 22050)
    (tmp_path / "clips.tsv").write_text(
        "path\tlabel\tcaption\tlicence\tsplit\n"
        "a.flac\tbell\ta bell\tCC0-1.0\ttest\n"
        "b.ogg\tknock\ta knock\tCC-BY-4.0\t\n"
    )
    bank = SourceBank.from_spec(str(tmp_path / "clips.tsv"))
    assert [c.label for c in bank.clips] == ["bell", "knock"]
    assert bank.clips[0].split == "test" and bank.clips[0].caption == "a bell"
    assert bank.licences() == {"CC-BY-4.0": 1, "CC0-1.0": 1}


def test_joined_spec_is_the_union_of_its_banks_with_each_clip_keeping_its_split(tmp_path):
    for i in range(4):
        (tmp_path / "dog").mkdir(exist_ok=True)
        sf.write(tmp_path / "dog" / f"{i}.wav", _tone(0.3 + 0.1 * i, 16000), 16000)
    folder, procedural = SourceBank.from_folder(tmp_path), SourceBank.procedural(seed=0)
    union = SourceBank.from_spec(f"procedural+{tmp_path}")
    assert len(union) == len(folder) + len(procedural)
    assert union.labels == sorted({*folder.labels, *procedural.labels})
    for clip in [*folder.clips, *procedural.clips]:
        assert union[clip.clip_id].split == clip.split and union[clip.clip_id].label == clip.label
    np.testing.assert_array_equal(union.audio(folder.clips[0].clip_id), folder.audio(folder.clips[0].clip_id))
    with pytest.raises(ValueError, match="clip ids must be unique"):
        SourceBank.from_spec("procedural+procedural")


def test_bad_source_inputs_give_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No audio files found"):
        SourceBank.from_folder(tmp_path / "empty")
    corrupt = tmp_path / "corrupt" / "bell"
    corrupt.mkdir(parents=True)
    (corrupt / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(ValueError, match=r"Could not decode audio file .*broken\.wav"):
        SourceBank.from_folder(tmp_path / "corrupt")
    with pytest.raises(ValueError, match=r"Unknown class\(es\) 'unicorn'.*available: alarm"):
        SourceBank.procedural(clips_per_class=1).filter(["unicorn"])
    (tmp_path / "bad.csv").write_text("file,class\nx.wav,bell\n")
    with pytest.raises(ValueError, match="lacks column"):
        SourceBank.from_manifest(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="Unknown sources"):
        SourceBank.from_spec("no/such/thing")
    with pytest.raises(ValueError, match="Unknown Debian sound package"):
        SourceBank.debian(tmp_path, ["not-a-sound-package"])


def _apt_can_download() -> str | None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return "apt-get/dpkg-deb not available (not a Debian machine)"
    probe = subprocess.run(["apt-get", "download", "--print-uris", "sound-icons"], capture_output=True, text=True)
    if probe.returncode != 0 and "Unable to locate" not in probe.stderr:
        return f"apt-get cannot resolve packages here: {probe.stderr.strip()[:200]}"
    return None


def test_debian_bank_real_audio(tmp_path, monkeypatch):
    reason = _apt_can_download()
    if reason:
        pytest.skip(reason)
    try:
        bank = SourceBank.debian(tmp_path / "cache", ["sound-theme-freedesktop", "sound-icons"])
    except ValueError as error:
        if "apt-get" in str(error):
            pytest.skip(f"Debian archive unreachable: {error}")
        raise
    assert len(bank) >= 15 and {"telephone", "musicInstrument"} <= set(bank.labels)
    clip = next(c for c in bank.clips if c.label == "telephone")
    audio = bank.audio(clip.clip_id)
    assert audio.dtype == np.float32 and abs(len(audio) / SAMPLE_RATE - clip.duration) < 1e-3
    assert clip.licence and "sound-theme-freedesktop" in clip.attribution and clip.caption
    # A second load uses the cache only: with no tools on PATH, any fetch attempt would fail.
    monkeypatch.setenv("PATH", "")
    again = SourceBank.debian(tmp_path / "cache", ["sound-icons"])
    assert all(c.clip_id in bank for c in again.clips)


def test_a_file_the_manifest_lists_under_two_classes_is_one_clip(tmp_path, caplog):
    # The manifest lists lomiri's "Alarm clock" ringtone as music and as alarm: `debian:all` refused to load.
    reason = _apt_can_download()
    if reason:
        pytest.skip(reason)
    try:
        bank = SourceBank.debian(tmp_path / "cache", ["lomiri-sounds"])
    except ValueError as error:
        if "apt-get" in str(error):
            pytest.skip(f"Debian archive unreachable: {error}")
        raise
    alarm_clock = [clip for clip in bank.clips if clip.clip_id.endswith("/Alarm clock.ogg")]
    assert len(alarm_clock) == 1 and alarm_clock[0].label == "music"
    assert len(bank) == len({clip.clip_id for clip in bank.clips}) == 29
    assert "kept the first of two labels" in caplog.text and "Alarm clock.ogg (alarm)" in caplog.text
