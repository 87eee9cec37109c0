"""``fusionrec kcat``: the operator's kcat, pointed at fusionrec's broker and able to talk to Tansu.

Debian 12's kcat 1.7.1 links librdkafka 2.0.2, which misreads the optional tagged fields in
Tansu's ApiVersions answer ("ApiVersionRequest failed ... Read underflow ... broker version <
0.10") and never connects to the embedded broker. The librdkafka that ships inside the
confluent-kafka wheel fusionrec installs reads them correctly, so kcat is run with that library
where the wheel has one; against a real Kafka either library works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fusionrec.schemas import ConfigError
from fusionrec.streams.settings import Settings


def bundled_librdkafka() -> Path | None:
    """The librdkafka shared library inside the confluent-kafka wheel, if it carries one."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*")) if libs.is_dir() else []
    return found[0] if found else None


def run_kcat(settings: Settings, args: Sequence[str]) -> int:
    """Run ``kcat ARGS`` (``-b`` added from the settings unless given); returns kcat's exit code."""
    exe = shutil.which("kcat") or shutil.which("kafkacat")
    if exe is None:
        raise ConfigError("kcat is not installed (Debian/Ubuntu: apt-get install kcat)")
    argv = [exe, *args]
    if "-b" not in args and not any(a.startswith("-b") and len(a) > 2 for a in args):
        argv[1:1] = ["-b", settings.require_bootstrap()]
    lib = bundled_librdkafka()
    if lib is None:
        return subprocess.run(argv, check=False).returncode
    with tempfile.TemporaryDirectory(prefix="fusionrec-kcat-") as tmp:
        # kcat asks the dynamic loader for librdkafka.so.1; the wheel's copy has a hashed file name.
        (Path(tmp) / "librdkafka.so.1").symlink_to(lib)
        path = os.pathsep.join(p for p in (tmp, os.environ.get("LD_LIBRARY_PATH", "")) if p)
        return subprocess.run(argv, env={**os.environ, "LD_LIBRARY_PATH": path}, check=False).returncode
