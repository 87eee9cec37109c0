"""What a music or podcast item's audio costs the encoder worker's CPU, per format: decoding a 30 s
preview, and a four-minute track heard in windows (`FUSIONREC_AUDIO_WINDOWS`, the default three)
against its first 30 s alone; next to the librosa features of one 30 s clip on the CPU.

    .venv/bin/python bench/audio.py [--repeat 5]

The audio is 44.1 kHz stereo made from the speech fixtures with a chord under them (`tests/media`
writes the files: WAV, FLAC, Ogg Vorbis, MP3 and M4A/AAC at 192 kb/s). Each figure is the best of
--repeat rounds of CPU time (every thread), the cases taking turns. The bench's items in
`bench/encode.py` are 2-4 s 16 kHz mono FLAC, far cheaper than music: this is the other end.
"KB read" is how much of the four-minute file the worker's fetcher reads, in place as a `file://` path,
to hear it in windows (next to its size). Last, FLAC files read whole, by the worker (dr_flac) and by
libsndfile as the worker read them before: the 30 s preview, and the 2-4 s 16 kHz mono speech clips
`bench/encode.py` makes its items from (per clip).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fusionrec.encoders.audio import LibrosaAudioEncoder
from fusionrec.encoders.media import MediaLimits, decode_audio, decode_media
from fusionrec.encoders.media.audio import to_mono
from fusionrec.encoders.media.fetch import MediaPolicy, PartReader, PolicyMediaFetcher
from fusionrec.schemas import MediaKind, MediaRef
from fusionrec.testing.media import audio_file

HERE = Path(__file__).parent

RATE = 44_100
FORMATS = ("wav", "flac", "ogg", "mp3", "m4a")


def track(seconds: int) -> np.ndarray:
    import soundfile
    import soxr

    fixtures = sorted((HERE.parent / "tests" / "fixtures").glob("*.flac"))
    voices = [soundfile.read(path, dtype="float32")[0] for path in fixtures]
    voice = soxr.resample(np.concatenate(voices), 16_000, RATE)
    t = np.arange(seconds * RATE) / RATE
    chord = 0.05 * sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392))
    return (np.tile(voice, -(-t.size // voice.size))[: t.size] * 0.6 + chord).astype(np.float32)


def cpu_ms(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def by_libsndfile(data: bytes) -> np.ndarray:
    """A FLAC file read whole as :func:`decode_audio` read it before dr_flac did."""
    import soundfile

    with soundfile.SoundFile(io.BytesIO(data)) as f:
        return to_mono(f.read(dtype="float32", always_2d=True), f.samplerate, MediaLimits().max_audio_s)


def read_in_place(data: bytes, fmt: str) -> int:
    """Bytes of ``data`` the worker's fetcher reads of it as a file to hear it (windows, if long)."""
    with tempfile.TemporaryDirectory() as folder, PolicyMediaFetcher(MediaPolicy(media_root=Path(folder))) as fetcher:
        path = Path(folder) / f"track.{fmt}"
        path.write_bytes(data)
        source = fetcher.fetch(MediaKind.AUDIO, MediaRef(uri=path.as_uri()))
        try:
            assert np.array_equal(decode_media(MediaKind.AUDIO, source).samples, decode_audio(data).samples)
            return source.fetched if isinstance(source, PartReader) else len(source)  # a small file is read whole
        finally:
            if isinstance(source, PartReader):
                source.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    preview, song = track(30), track(240)
    files = {fmt: (audio_file(preview, RATE, fmt), audio_file(song, RATE, fmt)) for fmt in tqdm(FORMATS, desc="writing")}
    windows, start = MediaLimits(), MediaLimits(audio_windows=1)
    cases = {
        (fmt, what): (lambda data=data, limits=limits: decode_audio(data, limits))
        for fmt, (short, long) in files.items()
        for what, data, limits in (("preview", short, windows), ("windows", long, windows), ("first 30 s", long, start))
    }
    encoder = LibrosaAudioEncoder(device="cpu")
    clip = encoder.prepare(decode_audio(files["wav"][0]))
    cases["features", "preview"] = lambda: encoder.encode([clip] * 8)
    speech = [path.read_bytes() for path in sorted((HERE.parent / "tests" / "fixtures").glob("*.flac"))] * 20
    flac = {"30 s 44.1 kHz stereo preview": [files["flac"][0]], "2-4 s 16 kHz mono speech": speech}
    for what, clips in flac.items():
        assert all(np.array_equal(decode_audio(c).samples, by_libsndfile(c)) for c in clips)
        cases["worker", what] = lambda clips=clips: [decode_audio(c) for c in clips]
        cases["libsndfile", what] = lambda clips=clips: [by_libsndfile(c) for c in clips]
    best = {case: float("inf") for case in cases}
    for _ in tqdm(range(args.repeat), desc="rounds"):
        for case, fn in cases.items():
            per = {"features": 8, "worker": len(flac.get(case[1], ())), "libsndfile": len(flac.get(case[1], ()))}
            best[case] = min(best[case], cpu_ms(fn) / per.get(case[0], 1))
    print(f"CPU ms per clip, best of {args.repeat}: a 30 s preview; a 4 min track in 3 windows of 10 s, or its first 30 s")
    print(f"{'format':>8} {'KB (30 s)':>10} {'preview':>8} {'windows':>8} {'first 30 s':>11} {'KB (4 min)':>11} {'KB read':>8}")
    for fmt, (short, long) in files.items():
        print(f"{fmt:>8} {len(short) // 1024:>10} {best[fmt, 'preview']:>8.1f} {best[fmt, 'windows']:>8.1f}"
              f" {best[fmt, 'first 30 s']:>11.1f} {len(long) // 1024:>11} {read_in_place(long, fmt) // 1024:>8}")
    print(f"librosa features of a 30 s clip on the CPU (calls of 8): {best['features', 'preview']:.1f} ms")
    print(f"FLAC read whole, CPU ms per clip: {'worker (dr_flac)':>16} {'libsndfile':>11}")
    for what in flac:
        print(f"{what:>32}  {best['worker', what]:>16.2f} {best['libsndfile', what]:>11.2f}")


if __name__ == "__main__":
    main()
