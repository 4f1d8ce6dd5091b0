"""`datasets.load_dataset(DIR)` decodes the 4 FOA channels with the standard `Audio` feature (torchcodec + FFmpeg),
sample for sample as `read_foa` (soundfile) does; skipped, saying why, where torchcodec or FFmpeg is missing."""

from __future__ import annotations

import shutil

import datasets
import numpy as np
import pytest

from hf_spatial.conventions import SAMPLE_RATE
from hf_spatial.data import read_foa


def _native_decoding_problem() -> str | None:
    """Why `datasets.Audio` cannot decode here, or None."""
    if shutil.which("ffmpeg") is None:
        return "FFmpeg is not installed (apt-get install ffmpeg)"
    try:
        import torchcodec.decoders  # noqa: F401  (the optional decoder datasets uses)
    except ImportError:
        return "torchcodec is not installed (pip install -e '.[audio]', see README)"
    except OSError as error:  # e.g. the PyPI wheel is a CUDA build: it cannot load next to a CPU torch
        cause = " ".join(str(error.__cause__ or error).split())
        return f"torchcodec does not load next to this torch ({cause})"
    return None


PROBLEM = _native_decoding_problem()


@pytest.mark.skipif(PROBLEM is not None, reason=f"native Audio decoding unavailable: {PROBLEM}")
def test_load_dataset_gives_the_four_channels_read_foa_gives(scenes_dir):
    decoded = datasets.load_dataset(str(scenes_dir))["train"]
    raw = decoded.cast_column("audio", datasets.Audio(decode=False))
    for index in range(len(decoded)):
        expected = read_foa(raw[index]["audio"])
        samples = decoded[index]["audio"].get_all_samples()
        assert samples.sample_rate == SAMPLE_RATE and samples.data.shape == expected.shape
        np.testing.assert_array_equal(samples.data.numpy(), expected)
        np.testing.assert_array_equal(read_foa(decoded[index]["audio"]), expected)
