import numpy as np
import pytest

from modules.audio_types import AudioClip


def test_duration_and_dtype():
    clip = AudioClip(np.zeros(8000, dtype=np.int16), 16000)
    assert clip.seconds == 0.5
    assert clip.samples.dtype == np.float32


@pytest.mark.parametrize(
    ("samples", "rate", "msg"), [(np.zeros(4), 0, "sample_rate"), (np.zeros((2, 4)), 16000, "mono")]
)
def test_bad_audio_is_rejected(samples, rate, msg):
    with pytest.raises(ValueError, match=msg):
        AudioClip(samples, rate)
