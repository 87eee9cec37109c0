"""Decoding video: frames sampled over the clip, as shown, and the sound track a player plays."""

import io

import numpy as np
import pytest

from fusionrec.encoders.media import MediaLimits, decode_media
from fusionrec.schemas import MediaKind
from fusionrec.testing.media import (
    TONES,
    long_video,
    mp4,
    photo,
    streamed,
    three_tones,
    two_sound_tracks,
)

K = MediaKind


def test_video_frames_come_out_of_the_decoder_no_larger_than_the_image_models_size():
    from PIL import Image

    from fusionrec.encoders.image import center_square

    video = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48)), MediaLimits(video_frames=2, frame_size=32))
    assert [f.shape for f in video.frames] == [(32, 43, 3)] * 2  # short side 32, aspect kept
    assert center_square(video.frames[0], 32).shape == (32, 32, 3)
    # smaller frames keep their size: the encoder enlarges them on its device
    small = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48)), MediaLimits(video_frames=2, frame_size=224))
    full = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48)), MediaLimits(video_frames=1)).frames[0]
    assert full.shape == (48, 64, 3) and [f.shape for f in small.frames] == [(48, 64, 3)] * 2
    # an array gives the same square as the same picture given to Pillow
    assert np.array_equal(center_square(full, 32), center_square(Image.fromarray(full), 32))


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "libvpx"), ("mpegts", "libx264")])
def test_frames_are_spread_over_a_streamed_video_that_does_not_say_its_length_or_starts_late(fmt, codec):
    import math

    import av

    from fusionrec.encoders.media import sample_times

    data = streamed(fmt, codec, frames=40)  # 5 s at 8 fps; one keyframe, the first frame
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        said = (video.duration, video.start_time)
    assert said == ((None, 0) if fmt == "webm" else (450000, 22500))  # no length; starts at 0.25 s
    video = decode_media(K.VIDEO, data, MediaLimits(video_frames=8))
    # the first frame at or after each sample time over the 5 s, counted from the first frame
    expected = [math.ceil(8 * t - 1e-9) for t in sample_times([0.0], 5.0, 8)]
    assert [round(f[0, 0, 0] / 6) for f in video.frames] == expected


def test_anamorphic_video_frames_come_out_as_wide_as_they_are_shown():
    from PIL import Image

    # 48 x 48 pixels each 4/3 as wide as tall: shown 64 x 48, the left half black, the right white
    half = np.zeros((48, 48, 3), np.uint8)
    half[:, 24:] = 255
    picture = io.BytesIO()
    Image.fromarray(half).save(picture, "PNG")
    data = mp4(frames=2, size=(48, 48), image=picture.getvalue(), pixel_aspect=(4, 3))
    frame = decode_media(K.VIDEO, data, MediaLimits(video_frames=1)).frames[0]
    assert frame.shape == (48, 64, 3)
    assert frame[:, :28].max() < 40 and frame[:, 36:].min() > 215  # each half 32 wide, edges blurred
    assert decode_media(K.VIDEO, data, MediaLimits(video_frames=1, frame_size=32)).frames[0].shape == (32, 43, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_video_frames_come_out_as_the_display_matrix_shows_them(rotation):
    plain = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48), image=photo()), MediaLimits(video_frames=2))
    turned = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48), image=photo(), rotation=rotation),
                          MediaLimits(video_frames=2, frame_size=32))
    # scaled to the model's size while still in YUV, then turned: the short side stays 32
    assert [f.shape for f in turned.frames] == [(32, 43, 3) if rotation == 180 else (43, 32, 3)] * 2
    full = decode_media(K.VIDEO, mp4(frames=4, size=(64, 48), image=photo(), rotation=rotation),
                        MediaLimits(video_frames=2))
    for a, b in zip(full.frames, plain.frames, strict=True):
        assert np.array_equal(a, np.rot90(b, rotation // 90)) and a.flags.c_contiguous


def test_a_cover_picture_stored_before_the_video_is_not_sampled_for_it():
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as container:
        cover = container.add_stream("mjpeg", rate=1)  # one white frame, track 0
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        moving = container.add_stream("mpeg4", rate=8)
        moving.width, moving.height, moving.pix_fmt = 64, 48, "yuv420p"
        for packet in cover.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 250, np.uint8), format="rgb24")):
            container.mux(packet)
        for packet in cover.encode():
            container.mux(packet)
        for i in range(16):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="rgb24")
            for packet in moving.encode(frame):
                container.mux(packet)
        for packet in moving.encode():
            container.mux(packet)
    frames = decode_media(K.VIDEO, buf.getvalue(), MediaLimits(video_frames=4)).frames
    assert [f.shape for f in frames] == [(48, 64, 3)] * 4
    assert [int(f[0, 0, 0]) for f in frames] == sorted({int(f[0, 0, 0]) for f in frames})  # four moments, in order


def test_video_frames_are_converted_on_the_decoding_thread(monkeypatch):
    # swscale's default is a pool of as many threads as the host has cores, started for every
    # converter (every video) and woken for every small frame: on 16 cores several times the work.
    from av.video import reformatter

    real, asked = reformatter.VideoReformatter, []

    class Spy:  # VideoReformatter cannot be subclassed
        def __init__(self) -> None:
            self._real = real()

        def reformat(self, frame, **kw):
            asked.append(kw.get("threads"))
            return self._real.reformat(frame, **kw)

    monkeypatch.setattr(reformatter, "VideoReformatter", Spy)
    video = decode_media(K.VIDEO, mp4(frames=8, size=(320, 240)), MediaLimits(video_frames=4, frame_size=32))
    assert len(video.frames) == 4 and asked and set(asked) == {1}


@pytest.mark.parametrize("max_video_s", [60.0, 5.0])
@pytest.mark.parametrize(("gop", "bframes"), [(12, 0), (64, 0), (12, 2)])
def test_a_long_videos_samples_are_the_frames_a_full_decode_has_at_the_sample_times(gop, bframes, max_video_s):
    import av

    from fusionrec.encoders.media import sample_times

    data = mp4(frames=160, audio=True, size=(64, 48), image=photo(), gop=gop, bframes=bframes)  # 20 s at 8 fps
    got = decode_media(K.VIDEO, data, MediaLimits(video_frames=6, max_video_s=max_video_s, audio_windows=1))
    with av.open(io.BytesIO(data)) as container:
        every = [(f.time, f.key_frame, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert 150 <= len(every) <= 160
    keyframes = [t for t, key, _ in every if key]
    assert len(keyframes) == -(-160 // gop)
    wanted = sample_times(keyframes, 20.0, 6)
    # six 3.3 s segments: the keyframe nearest each one's middle, or the middle where it holds none
    assert wanted == pytest.approx([1.5, 4.5, 9.0, 12.0, 15.0, 18.0] if gop == 12 else [0.0, 5.0, 8.0, 35 / 3, 16.0, 55 / 3])
    if gop == 64 and max_video_s < 20:
        # sought, a middle is decoded from a keyframe at most 5 / 6 s before it: 8 s apart, that keyframe
        # stands in, so a video keyframed once costs no more than reading through max_video_s
        wanted = [0.0, 0.0, 8.0, 8.0, 16.0, 16.0]
    expected = [next(img for t, _, img in every if t >= w - 1e-6) for w in wanted]
    assert len(got.frames) == 6
    for frame, want in zip(got.frames, expected, strict=True):
        assert np.array_equal(frame, want)
    assert abs(got.audio.seconds - 20.0) < 0.15  # the track is read whole meanwhile


def _grey(seconds: float, t: float) -> float:
    """The grey of fusionrec.testing.media.long_video's frame at ``t``."""
    return 20 + 200 * t / seconds


# each container's own seeking: MP4's and MOV's index, Matroska's cues, MPEG-TS by bytes (its clock
# starts past zero), AVI's index
@pytest.mark.parametrize(("fmt", "codec", "sound_codec"), [
    ("mp4", "libx264", "aac"), ("mov", "mpeg4", "aac"), ("matroska", "libx264", "aac"),
    ("webm", "libvpx-vp9", "libopus"), ("mpegts", "mpeg2video", "aac"), ("avi", "mpeg4", "libmp3lame"),
])
def test_a_video_longer_than_the_limit_is_sampled_and_heard_over_all_of_it(fmt, codec, sound_codec):
    # 90 s brightening over its length, a different tone in each third: its first 60 s (what used to be
    # sampled) never get brighter than 153, and its first 30 s of sound hold the first tone alone
    data = long_video(fmt, codec, sound_codec, 90, three_tones(16_000))
    video = decode_media(K.VIDEO, data, MediaLimits(max_video_s=60.0, video_frames=8, max_audio_s=30.0))
    # a keyframe every 2 s: the one nearest each 11.25 s segment's middle is at most 1 s from it
    middles = [11.25 * (i + 0.5) for i in range(8)]
    np.testing.assert_allclose([f.mean() for f in video.frames], [_grey(90, t) for t in middles], atol=200 / 90 + 2)
    assert video.audio.samples.shape == (3, 160_000)
    heard = [np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / window.size for window in video.audio.samples]
    np.testing.assert_allclose(heard, TONES, atol=1.0)


def test_a_video_up_to_the_limit_is_read_through_and_its_long_sound_heard_in_windows():
    data = long_video("mp4", "libx264", "aac", 45, three_tones(16_000, part_s=15.0))
    video = decode_media(K.VIDEO, data, MediaLimits(max_video_s=60.0, video_frames=8, max_audio_s=30.0))
    # a keyframe every 2 s: the one nearest each 5.6 s segment's middle is at most 1 s from it
    middles = [45 / 8 * (i + 0.5) for i in range(8)]
    np.testing.assert_allclose([f.mean() for f in video.frames], [_grey(45, t) for t in middles], atol=200 / 45 + 2)
    assert video.audio.samples.shape == (3, 160_000)
    heard = [np.argmax(np.abs(np.fft.rfft(window))) * 16_000 / window.size for window in video.audio.samples]
    np.testing.assert_allclose(heard, TONES, atol=1.0)


def test_a_long_videos_short_sound_is_read_from_its_start_after_the_frames_are_sought():
    t = np.arange(20 * 16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    data = long_video("mp4", "libx264", "aac", 90, tone)
    video = decode_media(K.VIDEO, data, MediaLimits(max_video_s=60.0))
    assert video.audio.samples.ndim == 1 and abs(video.audio.seconds - 20.0) < 0.15
    # sample for sample what the file's sound is, read alone from its start without a seek
    np.testing.assert_array_equal(video.audio.samples, decode_media(K.AUDIO, data).samples)
    assert _grey(90, 80) < video.frames[-1].mean()


class _Frame:
    def __init__(self, time: float) -> None:
        self.time = time


class _Packet:
    """A fake demuxed packet: one frame per packet, no reordering; records being decoded."""

    def __init__(self, time: float, key: bool, log: list) -> None:
        self.time, self.is_keyframe, self.log = time, key, log

    def decode(self) -> list:
        self.log.append(self.time)
        return [_Frame(self.time)]


class _Codec:
    def __init__(self, log: list) -> None:
        self.log = log

    def flush_buffers(self) -> None:
        self.log.append("flush")


def test_only_the_packets_that_lead_to_a_sampled_frame_are_decoded():
    from fusionrec.encoders.media.video import frames_at

    log: list = []
    times = [i / 4 for i in range(40)]  # 10 s at 4 fps, a keyframe every 2 s
    packets = [_Packet(t, i % 8 == 0, log) for i, t in enumerate(times)]
    picked = frames_at(_Codec(log), packets, times, [0.0, 2.0, 4.75, 5.0, 9.5, 12.0])
    assert [f.time for f in picked] == [0.0, 2.0, 4.75, 5.0, 9.5, 9.75]  # past the end: the last frame
    # keyframes alone, then the run from 4.0 to 5.0, then from 8.0 to the end; a flush at each jump
    assert log == [0.0, "flush", 2.0, "flush", 4.0, 4.25, 4.5, 4.75, 5.0, "flush", 8.0, 8.25, 8.5, 8.75, 9.0,
                   9.25, 9.5, 9.75]
    assert frames_at(_Codec([]), [], [], [1.0]) == [None]


@pytest.mark.parametrize("rate", [16000, 22050])
def test_video_sound_comes_out_mono_at_16k_whatever_its_rate(rate):
    import numpy as np

    clip = decode_media(K.VIDEO, mp4(frames=16, audio=True, rate=rate)).audio
    assert clip.sample_rate == 16_000 and abs(clip.seconds - 2.0) < 0.15  # AAC pads a frame or two
    crossings = np.count_nonzero(np.diff(np.signbit(clip.samples[2000:-2000])))  # past the codec's edges
    assert abs(crossings / (len(clip.samples) - 4000) * 16000 / 2 - 330) < 5  # still a 330 Hz tone


@pytest.mark.parametrize("kind", [K.VIDEO, K.AUDIO])
@pytest.mark.parametrize("fmt", ["matroska", "mp4"])
@pytest.mark.parametrize("description_first", [True, False])
def test_the_sound_is_the_track_a_player_plays_not_an_audio_description(kind, fmt, description_first):
    data = two_sound_tracks(fmt, video=kind is K.VIDEO, description_first=description_first)
    media = decode_media(kind, data)
    clip = media.audio if kind is K.VIDEO else media
    crossings = np.count_nonzero(np.diff(np.signbit(clip.samples[2000:-2000])))
    assert abs(crossings / (len(clip.samples) - 4000) * 16000 / 2 - 330) < 5  # the tone; noise crosses thousands of times
