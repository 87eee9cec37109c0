"""What fetching a picture over HTTP and HTTPS costs the encoder worker: through the fetcher's one
client, whose pool keeps the connection open from item to item, against a client made for each
fetch, which connects (and shakes hands) again for every item. And from a ``file://`` path below
the media root: checked where the open file really is, against resolving its path first, link by
link, as the fetcher did before.

    .venv/bin/python bench/fetch.py [--fetches 300] [--kb 50]

A server on a loopback port (`fusionrec.testing.http_server`, keep-alive, as a CDN) serves one
picture; HTTPS uses a certificate made for the run with the `openssl` command (its rows are left out
where there is none), trusted beside the usual CA bundle (certifi's, which httpx loads for every
client it makes, plain HTTP too: that alone costs 20-25 ms of CPU). Each row is the CPU time of the
fetching thread and the wall time per fetch, best of --rounds rounds, the two ways taking turns,
with the connections the server saw in the last round. The server runs in the same process on
other threads: its CPU is not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import certifi
import httpx
from tqdm import tqdm

from fusionrec.encoders.media.fetch import MediaPolicy, PolicyMediaFetcher
from fusionrec.schemas import MediaKind, MediaRef
from fusionrec.testing.http_server import MediaServer

HERE = Path(__file__).parent


class ClientPerFetch(PolicyMediaFetcher):
    """The fetcher as it was before its client was shared: a client, so a connection, per fetch, closed
    after it (pictures only: a reader would need its client open)."""

    def _http_client(self) -> httpx.Client:
        self._made = httpx.Client(timeout=self.policy.timeout_s, follow_redirects=False)
        return self._made

    def _http(self, kind: MediaKind, uri: str, limit: int) -> bytes:  # type: ignore[override]
        try:
            return super()._http(kind, uri, limit)  # type: ignore[return-value]
        finally:
            self._made.close()


class ResolvedPaths(PolicyMediaFetcher):
    """The fetcher's ``file://`` reading as it was: the root's and the file's paths resolved (pathlib,
    a look at every component) before the file is read (pictures only)."""

    def _file(self, kind: MediaKind, uri: str, limit: int) -> bytes:  # type: ignore[override]
        assert self.policy.media_root is not None
        resolved = Path(unquote(urlsplit(uri).path)).resolve()
        assert resolved.is_relative_to(self.policy.media_root.resolve()) and resolved.stat().st_size <= limit
        return resolved.read_bytes()


def certificate(folder: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate and key for 127.0.0.1, or None without the openssl command; and
    ``folder / "trusted.pem"``, certifi's CA bundle with the certificate."""
    if shutil.which("openssl") is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    (folder / "trusted.pem").write_text(Path(certifi.where()).read_text() + cert.read_text())
    return cert, key


def measure(fetcher: PolicyMediaFetcher, uri: str, n: int, size: int) -> tuple[float, float]:
    """CPU ms of this thread and wall ms per fetch."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(n):
        assert len(fetcher.fetch(MediaKind.IMAGE, MediaRef(uri=uri))) == size  # type: ignore[arg-type]
    return (time.thread_time() - cpu) / n * 1000, (time.perf_counter() - wall) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fetches", type=int, default=300, help="per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kb", type=int, default=50, help="size of the picture")
    args = ap.parse_args()
    picture = os.urandom(args.kb * 1024)
    with tempfile.TemporaryDirectory() as folder:
        pair = certificate(Path(folder))
        if pair is not None:
            os.environ["SSL_CERT_FILE"] = str(Path(folder) / "trusted.pem")  # httpx loads it then (trust_env)
        schemes = ["http"] + (["https"] if pair is not None else [])
        rows = []
        for scheme in schemes:
            with MediaServer() as server:
                if scheme == "https":
                    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    context.load_cert_chain(*pair)  # type: ignore[misc]
                    server.socket = context.wrap_socket(server.socket, server_side=True)
                server.files["/picture.png"] = picture
                uri = server.url("/picture.png").replace("http:", f"{scheme}:", 1)
                best: dict[str, tuple[float, float, int | str]] = {}
                for _ in tqdm(range(args.rounds), desc=scheme):
                    for name, kind in (("client per fetch", ClientPerFetch), ("one shared client", PolicyMediaFetcher)):
                        server.reset()
                        with kind(MediaPolicy(allow_private_hosts=True)) as fetcher:
                            cpu, wall = measure(fetcher, uri, args.fetches, len(picture))
                        old = best.get(name, (float("inf"), float("inf"), 0))
                        best[name] = min(cpu, old[0]), min(wall, old[1]), server.connections
                rows += [(scheme, name, *figures) for name, figures in best.items()]
        media = Path(folder) / "media"
        (media / "shop" / "items").mkdir(parents=True)  # as deep as a bucket's paths
        (media / "shop" / "items" / "picture.jpg").write_bytes(picture)
        uri, best = f"file://{media}/shop/items/picture.jpg", {}
        for _ in tqdm(range(args.rounds), desc="file"):
            for name, kind in (("path resolved", ResolvedPaths), ("open file checked", PolicyMediaFetcher)):
                with kind(MediaPolicy(media_root=media)) as fetcher:
                    cpu, wall = measure(fetcher, uri, args.fetches, len(picture))
                old = best.get(name, (float("inf"), float("inf"), 0))
                best[name] = min(cpu, old[0]), min(wall, old[1]), "-"
        rows += [("file", name, *figures) for name, figures in best.items()]
    print(f"fetching a {args.kb} KB picture from a loopback server or below the media root, "
          f"{args.fetches} fetches, best of {args.rounds} rounds")
    print(f"{'':>6} {'':>18} {'CPU ms':>7} {'wall ms':>8} {'connections':>12}")
    for scheme, name, cpu, wall, connections in rows:
        print(f"{scheme:>6} {name:>18} {cpu:>7.3f} {wall:>8.3f} {connections:>12}")
    if "https" not in schemes:
        print("(no openssl command here: no HTTPS rows)")


if __name__ == "__main__":
    main()
