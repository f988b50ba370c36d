"""Dataset download against a local HTTP server: checksum, corrupted archives, offline failure."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.data.synthetic import generate_pennfudan
from insseg.errors import DatasetError


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A loopback HTTP server over a folder holding a good zip, a truncated one and a non-archive."""
    root = tmp_path_factory.mktemp("www")
    src = generate_pennfudan(tmp_path_factory.mktemp("src") / "PennFudanPed", num_images=6, height=48, width=64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(src.rglob("*")):
            z.write(p, Path("PennFudanPed") / p.relative_to(src))
    good = buf.getvalue()
    (root / "PennFudanPed.zip").write_bytes(good)
    (root / "truncated.zip").write_bytes(good[: len(good) // 2])
    (root / "page.zip").write_bytes(b"<html>not found</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", {"good": hashlib.sha256(good).hexdigest()}
    finally:
        server.shutdown()


def _cfg(tmp_path: Path, url: str, sha256: str | None = None):
    overrides = ["data=pennfudan", f"data.root={tmp_path / 'PennFudanPed'}", f"data.url={url}", "data.num_test=2"]
    if sha256:
        overrides.append(f"data.sha256={sha256}")
    return compose_config("train", overrides).data


def test_missing_root_downloads_verifies_and_extracts(tmp_path: Path, served) -> None:
    base, sums = served
    ds = build_dataset(_cfg(tmp_path, f"{base}/PennFudanPed.zip", sums["good"]), "train")
    assert len(ds) == 4 and (tmp_path / "PennFudanPed" / "PedMasks").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["PennFudanPed"], "no temporary files may be left behind"


def test_checksum_mismatch_leaves_nothing(tmp_path: Path, served) -> None:
    base, _ = served
    with pytest.raises(DatasetError, match="sha256"):
        build_dataset(_cfg(tmp_path, f"{base}/PennFudanPed.zip", "0" * 64), "train")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["truncated.zip", "page.zip"])
def test_corrupted_archive_is_reported(tmp_path: Path, served, name: str) -> None:
    base, _ = served
    with pytest.raises(DatasetError, match="damaged|neither a zip"):
        build_dataset(_cfg(tmp_path, f"{base}/{name}"), "train")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_fails_fast_with_instructions(tmp_path: Path, served) -> None:
    base, _ = served
    with pytest.raises(DatasetError, match="could not download.*PNGImages, PedMasks"):
        build_dataset(_cfg(tmp_path, f"{base}/missing.zip"), "train")
    with pytest.raises(DatasetError, match="could not download"):
        build_dataset(_cfg(tmp_path, "http://127.0.0.1:9/PennFudanPed.zip"), "train")
