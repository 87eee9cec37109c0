"""Every real encoder through the one contract, and sanity checks on real content: crops of one
photograph sit closer than unrelated pictures, speech sits closer to speech than to noise, and
librosa's own functions agree with the batched feature code."""

import json

import numpy as np
import pytest
import torch

from fusionrec.encoders import encode_raw, make_blocks
from fusionrec.encoders.audio import LibrosaAudioEncoder, load_audio_encoder
from fusionrec.encoders.image import load_image_encoder
from fusionrec.encoders.loading import load_text_encoder
from fusionrec.encoders.media import Clip, decode_audio, decode_image, decode_video
from fusionrec.encoders.video import VideoEncoder
from fusionrec.schemas import ConfigError
from fusionrec.testing.contracts import ODD_TEXTS, TEXTS, check_encoder_contract
from fusionrec.testing.media import audio_file, crop, mp4, noise_wav, other_photo, photo, png, slideshow, speech, wav

pytestmark = pytest.mark.integration


def images(*blobs: bytes) -> list:
    return [decode_image(b) for b in blobs]


ODD_IMAGES = [png(size=(1, 1)), png(size=(1000, 10)), png((0, 0, 0), size=(300, 300))]


@pytest.fixture(scope="module")
def lite0():
    return load_image_encoder("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def librosa_audio():
    return LibrosaAudioEncoder(device="cpu")


def test_efficientnet_lite0_meets_the_contract_and_sees_crops_of_one_photo_as_alike(lite0):
    assert lite0.dim == 1280 and lite0.version == "efficientnet-lite0@1280"
    check_encoder_contract(lite0, images(photo(), other_photo()), images(*ODD_IMAGES), atol=1e-3)
    top, bottom, present = encode_raw(lite0, images(crop(photo(), (0, 0, 1, 0.7)), crop(photo(), (0.1, 0.25, 0.9, 1)),
                                                    other_photo()))
    assert top @ bottom > top @ present + 0.1 and top @ bottom > bottom @ present + 0.1
    # squares of several sizes share a batch (each size scaled on the device apart): every row is
    # the vector its picture gets alone
    mixed = images(photo(), png(size=(40, 30)), crop(photo(), (0, 0, 0.5, 0.5)), other_photo(),
                   png((0, 90, 200), size=(30, 40)), crop(photo(), (0.5, 0.5, 1, 1)))
    alone = np.stack([encode_raw(lite0, [picture])[0] for picture in mixed])
    np.testing.assert_allclose(encode_raw(lite0, mixed), alone, atol=1e-4)


def test_a_torchvision_backbone_loads_from_the_model_directory(tmp_path):
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "mobilenet_v3_small.pth")
    enc = load_image_encoder("mobilenet_v3_small", model_dir=tmp_path, device="cpu")
    assert enc.dim == 576  # the pooled trunk: the classifier's Linear layers are gone
    check_encoder_contract(enc, images(photo(), other_photo()), images(*ODD_IMAGES), atol=1e-3)
    assert load_image_encoder(f"mobilenet_v3_small:{tmp_path / 'mobilenet_v3_small.pth'}", device="cpu").dim == 576
    with pytest.raises(ConfigError, match="no weights"):
        load_image_encoder("resnet18", model_dir=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match="not a torchvision"):
        load_image_encoder("not_a_net", model_dir=tmp_path, device="cpu")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """No CLIP weights ship in any package here: a randomly initialised small OpenCLIP model checks
    the loading path and the shared space, not what a trained CLIP knows."""
    import open_clip

    root = tmp_path_factory.mktemp("clip")
    config = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    (root / "tiny-clip-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(root / "tiny-clip-test.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-clip-test").state_dict(), root / "tiny.pt")
    return f"open_clip:tiny-clip-test:{root / 'tiny.pt'}"


def test_open_clip_towers_share_one_space(tiny_clip):
    image = load_image_encoder(tiny_clip, device="cpu")
    text = load_text_encoder(tiny_clip, device="cpu")
    assert image.dim == text.dim == 32 and image.space == text.space
    check_encoder_contract(image, images(photo(), other_photo()), images(*ODD_IMAGES), atol=1e-3)
    check_encoder_contract(text, TEXTS, ODD_TEXTS, atol=1e-3)
    assert [b.name for b in make_blocks({"text": text, "image": image})] == ["text+image"]


def test_words_reach_pictures_through_a_clip_model(tiny_clip):
    """A search for words lands in the block a CLIP model's pictures are in: an item that is only a
    picture is scored by the words' cosine with it (random weights: the score is checked, not its sense)."""
    from fusionrec.encoders import EarlyFusion, QueryEncoder
    from fusionrec.encoders.base import encode_raw

    image = load_image_encoder(tiny_clip, device="cpu")
    text = load_text_encoder(tiny_clip, device="cpu")
    fusion = EarlyFusion(make_blocks({"text": text, "image": image}))
    picture_item = fusion.fuse([{"image": encode_raw(image, images(photo()))[0]}])[0]
    query = QueryEncoder({"text": lambda: text}).encode("text", ["a portrait of a woman"], fusion.spec())[0]
    expected = float(encode_raw(text, ["a portrait of a woman"])[0] @ encode_raw(image, images(photo()))[0])
    assert float(query @ picture_item) == pytest.approx(expected, abs=1e-5) and expected != 0.0


def test_librosa_features_agree_with_librosa():
    import librosa

    enc = LibrosaAudioEncoder(device="cpu")
    y = decode_audio(speech()).samples
    S = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=1024, hop_length=320, n_mels=64, pad_mode="constant")
    db = librosa.power_to_db(S, top_db=80.0)
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=20)
    ours_db, ours_mfcc, (d1, d2) = (x[0].numpy() if isinstance(x, torch.Tensor) else [t[0].numpy() for t in x]
                                    for x in enc.features(torch.from_numpy(y)[None]))
    np.testing.assert_allclose(ours_db, db, atol=1e-2)
    np.testing.assert_allclose(ours_mfcc, mfcc, atol=1e-2)
    # delta edges: librosa fits a polynomial there ("interp"), we replicate the edge frame
    np.testing.assert_allclose(d1[:, 4:-4], librosa.feature.delta(mfcc)[:, 4:-4], atol=1e-2)
    np.testing.assert_allclose(d2[:, 4:-4], librosa.feature.delta(mfcc, order=2)[:, 4:-4], atol=1e-2)


def test_librosa_audio_meets_the_contract_and_hears_speech_as_speech(librosa_audio):
    clips = [decode_audio(b) for b in (speech("speech-en-1"), wav(2.0, 16000), speech("speech-en-2"),
                                        speech("speech-de-1"), noise_wav(seed=1), noise_wav(seed=2))]
    silent = Clip(np.zeros(16000, dtype=np.float32))
    blip = Clip(np.ones(160, dtype=np.float32) * 0.1)
    out = check_encoder_contract(librosa_audio, clips[:2], [silent, blip, clips[0]])
    assert not out[-3].any()  # silence: nothing to hear, a zero row (fusion treats it as missing)
    v = encode_raw(librosa_audio, clips)
    for a in (0, 2, 3):
        for b in (0, 2, 3):
            if a != b:
                assert v[a] @ v[b] > max(v[a] @ v[4], v[a] @ v[5], v[a] @ v[1]) + 0.05
    # a clip's vector does not depend on the clips batched with it (all are padded to the length of
    # speech-en-2); the tone and the noise, unlike speech, sound up to their last sample
    for k in (1, 3, 4):
        np.testing.assert_allclose(encode_raw(librosa_audio, clips[k : k + 1])[0], v[k], atol=1e-4)


def test_a_clip_heard_in_windows_is_pooled_as_one_clip(librosa_audio):
    a, b = (decode_audio(speech(name)).samples for name in ("speech-en-1", "speech-de-1"))
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    clips = [Clip(a), Clip(np.stack([a, a])), Clip(np.stack([a, b])), Clip(np.stack([b, a])), Clip(np.concatenate([a, b]))]
    v = encode_raw(librosa_audio, clips)
    np.testing.assert_allclose(v[1], v[0], atol=1e-5)  # twice the same window: the same statistics
    np.testing.assert_allclose(v[2], v[3], atol=1e-5)  # windows in either order
    assert v[2] @ v[4] > 0.99  # near the two played one after the other, which has a join between them
    assert v[2] @ v[0] < 0.99
    # a windowed clip's vector does not depend on the clips batched with it
    for k in (0, 2, 4):
        np.testing.assert_allclose(encode_raw(librosa_audio, clips[k : k + 1])[0], v[k], atol=1e-4)


def test_episodes_that_open_alike_sound_like_what_follows(librosa_audio):
    # Two two-minute episodes of a show open with the same 30 s of talk (all their first 30 s hold);
    # then one goes on talking and the other plays a chord. Heard in windows over all of it, each
    # sounds like what follows its opening.
    def tiled(name: str, seconds: int) -> np.ndarray:
        voice = decode_audio(speech(name)).samples
        return np.tile(voice, -(-seconds * 16_000 // voice.size))[: seconds * 16_000]

    t = np.arange(90 * 16_000) / 16_000
    chord = (0.1 * sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392))).astype(np.float32)
    talk, music = (decode_audio(audio_file(np.concatenate([tiled("speech-en-1", 30), body]), 16_000, "flac"))
                   for body in (tiled("speech-de-1", 90), chord))
    assert talk.samples.shape == music.samples.shape == (3, 160_000)
    v = encode_raw(librosa_audio, [talk, music, decode_audio(speech("speech-en-2")), Clip(chord[: 5 * 16_000])])
    assert v[0] @ v[1] < 0.95
    assert v[1] @ v[3] > v[0] @ v[3] + 0.05  # the one that plays music is nearer a chord
    assert v[0] @ v[2] > v[1] @ v[2] + 0.05  # and the one that talks nearer other talk


def test_episodes_that_open_alike_look_like_what_follows(lite0, librosa_audio):
    # Two three-minute episodes open with the same minute of titles (all their first minute holds);
    # then one shows a person and the other a product. Sampled over all of it, each looks like what
    # follows its opening.
    titles = png((30, 30, 90), size=(160, 120))
    episodes = [decode_video(slideshow([(titles, 60), (body, 120)])) for body in (photo(), other_photo())]
    assert all(len(episode.frames) == 8 for episode in episodes)
    enc = VideoEncoder(lite0, librosa_audio)
    v = encode_raw(enc, episodes)[:, :1280]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    person, product = encode_raw(lite0, images(photo(), other_photo()))
    assert v[0] @ v[1] < 0.95
    assert v[0] @ person > v[1] @ person + 0.05
    assert v[1] @ product > v[0] @ product + 0.05


def test_an_exported_audio_encoder_loads_from_a_file(tmp_path):
    class Energy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            frames = x.unfold(1, 400, 160).pow(2).mean(-1).clamp(min=1e-8).log()
            stats = torch.stack([frames.mean(1), frames.std(1), frames.amax(1), frames.amin(1)], dim=1)
            return self.proj(stats)

    torch.manual_seed(0)
    batch, time = torch.export.Dim("batch", min=1), torch.export.Dim("time", min=800)
    program = torch.export.export(Energy(), (torch.zeros(2, 16000),), dynamic_shapes=({0: batch, 1: time},))
    torch.export.save(program, tmp_path / "energy.pt2")
    enc = load_audio_encoder("energy.pt2", model_dir=tmp_path, device="cpu")
    assert enc.dim == 8 and enc.version == "exported-energy@8"
    check_encoder_contract(enc, [decode_audio(speech()), decode_audio(noise_wav())], [decode_audio(wav(0.1, 16000))])
    # a clip heard in windows: the mean of its windows' embeddings
    windows = np.stack([decode_audio(speech()).samples[:16_000], decode_audio(noise_wav(seconds=1.0)).samples])
    with torch.inference_mode():
        mean = enc._model(torch.from_numpy(windows)).mean(0).numpy()
    np.testing.assert_allclose(encode_raw(enc, [Clip(windows)])[0], mean / np.linalg.norm(mean), atol=1e-5)
    with pytest.raises(ConfigError):
        load_audio_encoder("missing.pt2", model_dir=tmp_path, device="cpu")


def test_video_meets_the_contract_and_its_frames_look_like_their_picture(lite0, librosa_audio):
    enc = VideoEncoder(lite0, librosa_audio)
    assert enc.dim == 1280 + librosa_audio.dim
    of_photo = decode_video(mp4(12, audio=True, size=(160, 192), image=photo()))
    grey = decode_video(mp4(8))
    out = check_encoder_contract(enc, [of_photo, grey], [decode_video(mp4(1))], atol=1e-3)
    assert np.linalg.norm(out[1, 1280:]) == 0  # no sound track: zeros in the audio half
    picture, present = encode_raw(lite0, images(photo(), other_photo()))
    frames = out[0, :1280] / np.linalg.norm(out[0, :1280])
    assert frames @ picture > frames @ present + 0.1
