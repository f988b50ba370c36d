"""Download, verify and extract a dataset archive; the destination appears whole or not at all."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from insseg.errors import DatasetError


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, out: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, open(out, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"downloading {url.rsplit('/', 1)[-1]}",
            file=sys.stderr,
            disable=None,
        ) as bar:
            while block := response.read(1 << 20):
                f.write(block)
                bar.update(len(block))


def _extract(archive: Path, into: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    else:
        raise DatasetError(f"downloaded file {archive} is neither a zip nor a tar archive")


def _find_root(extracted: Path, expected: Sequence[str]) -> Path | None:
    """The folder inside ``extracted`` that holds every path in ``expected`` (searched two levels deep)."""
    candidates = (
        [extracted] + [p for p in extracted.glob("*") if p.is_dir()] + [p for p in extracted.glob("*/*") if p.is_dir()]
    )
    for candidate in candidates:
        if all((candidate / e).exists() for e in expected):
            return candidate
    return None


def download_and_extract(
    url: str, dest: str | Path, expected: Sequence[str], sha256: str | None = None, timeout: float = 30.0
) -> Path:
    """Fetch ``url``, check its sha256, extract it and move the folder holding ``expected`` to ``dest``.

    Work happens in a temporary folder beside ``dest``; ``dest`` is created by one rename at the end, so an
    interrupted or corrupted download never leaves a half-written dataset behind.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp_name:
        tmp = Path(tmp_name)
        archive = tmp / "archive"
        try:
            _fetch(url, archive, timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise DatasetError(
                f"could not download {url} ({reason}). Download it by hand and extract it so that "
                f"{dest} holds {', '.join(expected)}, or point data.root at an existing copy."
            ) from None
        if sha256 is not None:
            actual = sha256_of(archive)
            if actual != sha256.lower():
                raise DatasetError(
                    f"download of {url} is corrupted: sha256 {actual} does not match the expected {sha256}. "
                    "Nothing was extracted; try again, or download it by hand."
                )
        extracted = tmp / "extracted"
        extracted.mkdir()
        try:
            _extract(archive, extracted)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
            raise DatasetError(f"archive downloaded from {url} is damaged: {e}") from None
        found = _find_root(extracted, expected)
        if found is None:
            raise DatasetError(f"archive downloaded from {url} does not contain {', '.join(expected)}")
        if dest.exists():
            shutil.rmtree(dest)
        found.rename(dest)
    return dest
