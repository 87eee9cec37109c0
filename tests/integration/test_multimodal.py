"""Items with text, image, audio and video go through the real broker and encoder worker (MiniLM,
EfficientNet-Lite0, librosa features, PyAV) into Milvus as fused vectors; items missing
modalities are stored in the same space and found by search."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest

from fusionrec.agents.encode_items import ItemEncoder
from fusionrec.encoders.fusion import query_transform
from fusionrec.encoders.media.fetch import PolicyMediaFetcher
from fusionrec.schemas import Item
from fusionrec.streams import MemoryVectorIndex
from fusionrec.streams.build import load_encoders, make_fusion, media_policy
from fusionrec.testing.media import crop, mp4, noise_wav, other_photo, photo, speech

pytestmark = pytest.mark.integration


def small_jpeg(data: bytes, width: int = 200) -> bytes:
    """Under the suite's 20 kB image limit."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.thumbnail((width, width))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def test_multimodal_items_are_fused_stored_and_found(stack, driver, media_root):
    tag = uuid.uuid4().hex[:6]
    folder = media_root / f"mm-{tag}"
    folder.mkdir()
    files = {
        "portrait.jpg": small_jpeg(photo()),
        "portrait-crop.jpg": small_jpeg(crop(photo(), (0.05, 0.05, 0.95, 0.8))),
        "present.jpg": small_jpeg(other_photo()),
        "talk.flac": speech("speech-en-1"),
        "talk2.flac": speech("speech-en-2"),
        "hiss.wav": noise_wav(seed=3),
        "clip.mp4": mp4(12, audio=True, size=(160, 192), image=photo()),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)

    def uri(name: str) -> dict:
        return {"uri": f"file://{folder / name}"}

    items = [
        Item(id=f"{tag}-full", title="admiral's portrait in naval uniform", tags=["navy", "portrait"],
             media={"image": uri("portrait.jpg"), "audio": uri("talk.flac"), "video": uri("clip.mp4")}),
        Item(id=f"{tag}-image", media={"image": uri("portrait-crop.jpg")}),
        Item(id=f"{tag}-audio", media={"audio": uri("talk2.flac")}),
        Item(id=f"{tag}-text", title="portrait of a navy officer in uniform"),
        Item(id=f"{tag}-video", media={"video": uri("clip.mp4")}),
        Item(id=f"{tag}-vector", vectors={"clip": [0.1, 0.9, 0.0, 0.2]}),
        Item(id=f"{tag}-other", title="a gift box wrapped in blue paper with a bow",
             media={"image": uri("present.jpg"), "audio": uri("hiss.wav")}),
    ]
    driver.publish_items(items, timeout_s=180)
    stored = driver.index.get([it.id for it in items])

    modalities = {
        "full": ["text", "image", "audio", "video"], "image": ["image"], "audio": ["audio"], "text": ["text"],
        "video": ["video"], "vector": ["clip"], "other": ["text", "image", "audio"],
    }
    spec = driver.index.fusion_spec()
    assert spec is not None and spec["kind"] == "early"
    sizes = {b["name"]: b["dim"] for b in spec["blocks"]}
    assert sizes == {"text": 384, "image": 1280, "audio": 207, "video": 1280 + 207, "clip": 4}
    offsets = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1], strict=True))
    for key, expected in modalities.items():
        row = stored[f"{tag}-{key}"]
        assert [part.split("=")[0] for part in row.encoder_version.split(",")] == expected
        assert row.fusion_version == spec["version"] and row.vector.shape == (sum(sizes.values()),)
        assert abs(np.linalg.norm(row.vector) - 1) < 1e-4
        filled = [name for name in sizes if np.any(row.vector[offsets[name] : offsets[name] + sizes[name]])]
        assert filled == expected, key

    # The worker's vector is what the same encoders and fusion give in this process.
    encoders = load_encoders(stack.settings)
    local_index = MemoryVectorIndex()
    local = ItemEncoder(encoders, make_fusion(stack.settings, encoders), local_index,
                        PolicyMediaFetcher(media_policy(stack.settings)), max_event_bytes=64_000)
    assert local.encode_and_store(items[:1]) == {}
    np.testing.assert_allclose(local_index.get([items[0].id])[items[0].id].vector, stored[items[0].id].vector,
                               atol=2e-3)

    # Search with the full item: every partial copy of its content outranks the unrelated item.
    query = query_transform(spec)(stored[f"{tag}-full"].vector)
    hits = dict(driver.index.search(query, 200))
    assert hits[f"{tag}-full"] == pytest.approx(1.0, abs=1e-3)
    for key in ("image", "audio", "text", "video"):
        assert hits[f"{tag}-{key}"] > hits.get(f"{tag}-other", -1.0) + 0.05, (key, hits)
