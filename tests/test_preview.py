"""python -m insseg.data.preview: samples.json holds what it promises (RLE masks whose extents are the boxes,
the sizes and scales of the pipeline) and one overlay per sample; bad input is one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from insseg.data.preview import main


def _args(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    return [
        "data=pennfudan",
        f"data.root={root}",
        "data.num_test=4",
        "model.min_size=64",
        "model.max_size=96",
        f"out={tmp_path / 'preview'}",
        *extra,
    ]


def _extent(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize("augment", ["lsj", "[multiscale,photometric]"])
def test_preview_writes_samples_whose_masks_are_their_boxes(tmp_path, pennfudan_root, augment, capsys):
    assert main(_args(tmp_path, pennfudan_root, f"data.augment={augment}", "num=5", "seed=3")) == 0
    out = tmp_path / "preview"
    data = json.loads((out / "samples.json").read_text())
    samples = data["samples"]
    assert len(samples) == 5 and data["seed"] == 3
    assert sum(len(s["boxes"]) for s in samples) > 0
    for s in samples:
        h, w = s["size"]
        if augment == "lsj":
            assert (h, w) == (64, 64) and 0.1 * 0.5 <= s["scale"] <= 2.0  # fits 96x128 into 64: x0.5, jittered
        else:
            assert min(h, w) in (51, 54, 56, 59, 61, 64) or max(h, w) == 96
        assert len(s["boxes"]) == len(s["labels"]) == len(s["masks"]) == len(s["classes"])
        assert all(c == "person" for c in s["classes"]) and all(v == 1 for v in s["labels"])
        for box, rle in zip(s["boxes"], s["masks"]):
            mask = mask_utils.decode(rle)
            assert mask.shape == (h, w) and box == _extent(mask)
        overlay = Image.open(out / s["overlay"])
        assert overlay.size == (w, h)
    assert "samples.json" in capsys.readouterr().out


def test_preview_without_augmentation_shows_the_images_as_they_are(tmp_path, pennfudan_root):
    assert main(_args(tmp_path, pennfudan_root, "data.augment=none", "num=2")) == 0
    samples = json.loads((tmp_path / "preview" / "samples.json").read_text())["samples"]
    assert [s["scale"] for s in samples] == [1.0, 1.0] and all(s["size"] == [96, 128] for s in samples)


def test_preview_bad_input_is_one_line_and_status_2(tmp_path, pennfudan_root, capsys):
    assert main(_args(tmp_path, pennfudan_root, "num=0")) == 2
    assert capsys.readouterr().err.strip() == "error: num=0 must be > 0"
    assert main(["data.augment=lsj"]) == 2
    assert "out=<dir>" in capsys.readouterr().err
    assert main(_args(tmp_path, pennfudan_root, "data.augment=zoom")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "data.augment" in err
