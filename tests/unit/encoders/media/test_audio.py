"""Decoding sound: mono 16 kHz clips from every layout and codec, windows over long clips."""

import io

import numpy as np
import pytest

from fusionrec.encoders.media import MediaLimits, audio_windows, decode_media
from fusionrec.encoders.media import audio as media_audio
from fusionrec.encoders.media.audio import flac_clip, windows_clip
from fusionrec.schemas import ErrorCode, EventError, MediaKind
from fusionrec.testing.media import (
    TONES,
    audio_file,
    mp4,
    three_tones,
    wav,
)

K = MediaKind


@pytest.mark.parametrize("rate", [16000, 22050])
def test_a_stereo_track_is_the_mean_of_its_channels_as_libsndfile_files_are(rate):
    import numpy as np

    def rms(left_only: bool) -> float:
        clip = decode_media(K.VIDEO, mp4(frames=16, audio=True, rate=rate, left_only=left_only)).audio
        return float(np.sqrt(np.mean(clip.samples[2000:-2000] ** 2)))

    assert rms(left_only=True) / rms(left_only=False) == pytest.approx(0.5, abs=0.02)
    assert rms(left_only=False) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)  # the tone's own level


def test_a_stereo_file_comes_out_as_the_mean_of_its_channels():
    import soundfile

    t = np.arange(16000) / 16000
    left, right = 0.4 * np.sin(2 * np.pi * 330 * t), 0.2 * np.cos(2 * np.pi * 50 * t)
    buf = io.BytesIO()
    soundfile.write(buf, np.stack([left, right], axis=1), 16000, format="FLAC", subtype="PCM_24")
    clip = decode_media(K.AUDIO, buf.getvalue())
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-5)


def flac(subtype: str = "PCM_16", rate: int = 16_000, channels: int = 1, seconds: float = 2.0) -> bytes:
    import soundfile

    noise = np.random.default_rng(0).normal(0, 0.2, (int(seconds * rate), channels)).clip(-1, 1)
    buf = io.BytesIO()
    soundfile.write(buf, noise, rate, format="FLAC", subtype=subtype)
    return buf.getvalue()


def decoded(data: bytes, limits: MediaLimits | None = None) -> np.ndarray | ErrorCode:
    try:
        return decode_media(K.AUDIO, data, limits or MediaLimits()).samples
    except EventError as exc:
        return exc.code


def by_libsndfile(monkeypatch, data: bytes, limits: MediaLimits | None = None) -> np.ndarray | ErrorCode:
    """What ``data`` decodes to with dr_flac left out: libsndfile reading every FLAC file."""
    with monkeypatch.context() as m:
        m.setattr(media_audio, "flac_clip", lambda *args: None)
        return decoded(data, limits)


@pytest.mark.parametrize("subtype", ["PCM_S8", "PCM_16", "PCM_24"])
@pytest.mark.parametrize(("rate", "channels"), [(16_000, 1), (44_100, 2), (48_000, 6)])
def test_dr_flac_reads_a_flac_file_to_the_same_samples_as_libsndfile(monkeypatch, subtype, rate, channels):
    data = flac(subtype, rate, channels)
    read = []
    monkeypatch.setattr(media_audio, "flac_clip", lambda *args: read.append(flac_clip(*args)) or read[-1])
    samples = decoded(data)
    assert read and read[0] is not None  # dr_flac read it
    np.testing.assert_array_equal(samples, by_libsndfile(monkeypatch, data))
    # a file longer than the limit is heard in windows: libsndfile seeks to them, as before
    short = MediaLimits(max_audio_s=1.0)
    np.testing.assert_array_equal(decoded(data, short), by_libsndfile(monkeypatch, data, short))


def same(a: np.ndarray | ErrorCode, b: np.ndarray | ErrorCode) -> bool:
    return a is b if isinstance(a, ErrorCode) or isinstance(b, ErrorCode) else np.array_equal(a, b)


def damaged(data: bytes, how: str) -> bytes:
    broken = bytearray(data)
    if how == "frame":  # a byte in the middle of the audio: its frame fails its CRC
        broken[len(data) // 2] ^= 0x55
    elif how == "metadata":  # the second block's type made STREAMINFO's: libFLAC refuses the file
        broken[42] &= 0x80
    elif how == "length":  # STREAMINFO says there are 256 samples more than there are
        assert broken[22:26] == (32_000).to_bytes(4, "big")
        broken[22:26] = (32_256).to_bytes(4, "big")
    else:  # truncated
        del broken[len(data) * 2 // 3 :]
    return bytes(broken)


@pytest.mark.parametrize("how", ["frame", "metadata", "length", "truncated"])
def test_a_damaged_flac_file_decodes_as_libsndfile_decodes_it(monkeypatch, how):
    # dr_flac passes over a frame that fails its CRC (the file comes out short) and reads on past
    # metadata libFLAC refuses: libsndfile opens every file first and reads any dr_flac cuts short
    data = damaged(flac(), how)
    assert same(decoded(data), by_libsndfile(monkeypatch, data))


def test_dr_flac_never_hears_what_neither_libsndfile_nor_the_file_holds(monkeypatch):
    # 400 files damaged at random: each decodes as libsndfile decodes it, or (where libsndfile
    # refuses it or reads noise, and dr_flac's CRCs pass) to the file's own audio, whole or cut short
    rng = np.random.default_rng(0)
    originals = [flac(seconds=seconds) for seconds in (0.5, 1.0)] + [flac("PCM_24", 44_100, 2, 0.5)]
    for i in range(400):
        data = bytearray(originals[i % len(originals)])
        if i % 4 == 0:  # bits flipped anywhere
            for k in rng.integers(0, len(data), rng.integers(1, 20)):
                data[k] ^= 1 << rng.integers(0, 8)
        elif i % 4 == 1:  # truncated
            del data[rng.integers(4, len(data)) :]
        elif i % 4 == 2:  # the header and first frame written over
            k = rng.integers(0, 200)
            data[k : k + rng.integers(1, 8)] = rng.bytes(rng.integers(1, 8))
        else:  # bytes slipped in
            k = rng.integers(0, len(data))
            data[k:k] = rng.bytes(rng.integers(1, 64))
        ours, theirs = decoded(bytes(data)), by_libsndfile(monkeypatch, bytes(data))
        if not same(ours, theirs):
            truth = decoded(originals[i % len(originals)])
            assert isinstance(ours, np.ndarray) and np.array_equal(ours, truth[: len(ours)]), (i, ours, theirs)


def test_every_sample_layout_comes_out_as_the_mean_of_its_channels():
    import av
    import numpy as np

    from fusionrec.encoders.media.audio import TrackReader

    t = np.arange(1024) / 16000
    left, right = (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), (0.2 * np.cos(2 * np.pi * 50 * t)).astype(np.float32)
    packed = np.stack([left, right], axis=1).reshape(1, -1)
    for fmt, samples in [("fltp", np.stack([left, right])), ("flt", packed), ("s16", (packed * 32767).astype(np.int16))]:
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="stereo")
        frame.sample_rate = 16000
        track = TrackReader(max_s=1.0)
        track.add(frame)
        np.testing.assert_allclose(track.samples(), (left + right) / 2, atol=1e-4, err_msg=fmt)
    track = TrackReader(max_s=1.0)  # a stream whose layout changes part way
    for samples, layout in [(left[None, :], "mono"), (np.stack([left, right]), "stereo")]:
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate = 16000
        track.add(frame)
    np.testing.assert_allclose(track.samples(), np.concatenate([left, (left + right) / 2]), atol=1e-6)


@pytest.mark.parametrize("windows", [1, 3])
def test_audio_limits_bound_the_decoded_length(windows):
    clip = decode_media(K.AUDIO, wav(seconds=3.0, rate=22050), MediaLimits(max_audio_s=1.0, audio_windows=windows))
    assert abs(clip.seconds - 1.0) < 0.01


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_a_clip_longer_than_the_limit_is_heard_in_windows_spread_over_all_of_it(fmt):
    # 90 s of 44.1 kHz stereo, a different tone in each third: its first 30 s hold only the first tone
    data = audio_file(three_tones(44_100), 44_100, fmt)
    clip = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=30.0, audio_windows=3))
    assert clip.samples.shape == (3, 160_000)  # 10 s at 16 kHz from each third
    heard = [np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / window.size for window in clip.samples]
    np.testing.assert_allclose(heard, TONES, atol=1.0)
    start = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=30.0, audio_windows=1))
    assert start.samples.shape == (480_000,)


@pytest.mark.parametrize("fmt", ["wav", "flac", "m4a"])
def test_each_window_holds_the_samples_found_at_its_place_in_the_whole_clip(fmt):
    # noise, so a window one sample off does not match; M4A's windows are reached by seeking, and
    # AAC needs the frame before each window decoded too (it overlaps with it)
    rng = np.random.default_rng(0)
    noise = np.convolve(rng.normal(0, 0.2, 100 * 16_000), np.ones(4) / 4, "same").astype(np.float32)
    data = audio_file(noise, 16_000, fmt)
    whole = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=200.0)).samples  # read from the start, no seek
    clip = decode_media(K.AUDIO, data, MediaLimits(max_audio_s=30.0, audio_windows=3))
    assert clip.samples.shape == (3, 160_000)
    import av

    with av.open(io.BytesIO(data)) as container:  # the windows go by the length the file states
        sound = container.streams.audio[0]
        seconds = float(sound.duration * sound.time_base)  # M4A: 100.064 s, AAC's priming frame included
    for window, start in zip(clip.samples, audio_windows(seconds, 30.0, 3), strict=True):
        at = round(start * 16_000)
        np.testing.assert_array_equal(window, whole[at : at + window.size])


def test_a_window_the_file_ends_before_is_left_out():
    # a VBR MP3 without a length header says it is longer than it is: its last window comes back short
    full, short = np.ones(16_000, np.float32), np.ones(3_000, np.float32)
    assert windows_clip([full, full[:15_000], short], 1.0).samples.shape == (2, 15_000)
    assert windows_clip([short, np.zeros(0, np.float32)], 1.0).samples.shape == (1, 3_000)
    with pytest.raises(ValueError, match="no audio samples"):
        windows_clip([np.zeros(0, np.float32)] * 3, 1.0)
