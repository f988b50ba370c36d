"""The Python API: Segmenter's return types against a weights=null smoke model, and its threshold semantics
(strictly greater than) against a stub model whose scores are known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_MODEL
from PIL import Image
from torch import nn

from insseg.config import compose_config
from insseg.errors import ConfigError
from insseg.inference import Segmenter
from insseg.inference.loop import score_floor
from insseg.predictions import ImagePrediction

SMALL = SMALL_MODEL  # the shared small-model overrides (conftest.py)


class StubDetector(nn.Module):
    """Returns fixed detections for any image: scores straddle 0.5 and 0.3 exactly, unsorted."""

    class_names = ["cat", "dog"]
    SCORES = [0.3, 0.9, 0.5, 0.7, float(np.nextafter(np.float32(0.5), np.float32(1.0)))]
    LABELS = [1, 2, 1, 2, 1]

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # so .to(device) has something to move

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outs = []
        for img in images:
            assert img.dtype == torch.float32 and img.shape[0] == 3 and float(img.max()) <= 1.0
            h, w = img.shape[-2:]
            n = len(self.SCORES)
            masks = torch.zeros(n, 1, h, w)
            for i in range(n):
                masks[i, 0, : i + 1, :] = 0.9  # instance i covers the top i+1 rows
                masks[i, 0, -1, :] = 0.5  # exactly 0.5 is not foreground
            boxes = torch.tensor([[i, i, w - 1, h - 1] for i in range(n)], dtype=torch.float32)
            labels, scores = torch.tensor(self.LABELS), torch.tensor(self.SCORES)
            outs.append({"boxes": boxes, "labels": labels, "scores": scores, "masks": masks})
        return outs


def test_threshold_is_strictly_greater_and_results_sorted() -> None:
    seg = Segmenter(StubDetector(), device="cpu", score_threshold=0.5)
    res = seg.predict(np.zeros((6, 9, 3), np.uint8))
    # 0.5 itself is dropped, the next float32 above it is kept; highest score first.
    assert res.scores.tolist() == pytest.approx([0.9, 0.7, float(StubDetector.SCORES[4])])
    assert res.scores[-1] > np.float32(0.5)
    assert res.labels.tolist() == [2, 2, 1] and res.names == ["dog", "dog", "cat"]
    assert res.boxes[:, 0].tolist() == [1.0, 3.0, 4.0]  # boxes follow their scores
    assert [int(m[:, 0].sum()) for m in res.masks] == [2, 4, 5]  # 0.5 on the last row stays background
    res03 = Segmenter(StubDetector(), device="cpu", score_threshold=0.3).predict(np.zeros((6, 9, 3), np.uint8))
    # Scores and threshold compare in the scores' float32, as ImagePrediction.above does.
    assert len(res03) == 4 and np.float32(0.3) not in res03.scores and np.float32(0.5) in res03.scores


def test_constructor_checks() -> None:
    with pytest.raises(ConfigError, match="score_threshold"):
        Segmenter(StubDetector(), device="cpu", score_threshold=1.0)
    bare = StubDetector()
    bare.class_names = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="class_names"):
        Segmenter(bare, device="cpu")
    assert Segmenter(bare, device="cpu", class_names=["a", "b"]).class_names == ["a", "b"]
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            Segmenter(StubDetector(), device="cuda")
    assert Segmenter(StubDetector(), device="auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="module")
def small_cfg():
    return compose_config("predict", SMALL)


@pytest.fixture(scope="module")
def segmenter(small_cfg) -> Segmenter:
    torch.manual_seed(0)
    # A low threshold: random heads score around 0.5-0.7, and the test needs some detections.
    return Segmenter.from_config(small_cfg, score_threshold=0.05)


def check_segmentation(res: ImagePrediction, h: int, w: int, class_names: list[str], some: bool = True) -> None:
    n = len(res)
    assert n > 0 or not some
    assert res.masks.shape == (n, h, w) and res.masks.dtype == np.bool_
    assert len(res.rles) == n and np.array_equal(res.mask_array(), res.masks)
    assert res.boxes.dtype == np.float32 and res.boxes.shape == (n, 4)
    assert (res.boxes[:, 2] >= res.boxes[:, 0]).all() and (res.boxes[:, 3] >= res.boxes[:, 1]).all()
    assert res.labels.dtype == np.int64 and res.labels.shape == (n,)
    assert ((res.labels >= 1) & (res.labels <= len(class_names))).all()
    assert res.scores.dtype == np.float32 and (np.diff(res.scores) <= 0).all() and (res.scores > 0.05).all()
    assert res.names == [class_names[k - 1] for k in res.labels]
    assert (res.height, res.width) == (h, w)


def test_predict_accepts_path_pil_and_array(segmenter: Segmenter, tmp_path: Path) -> None:
    assert segmenter.class_names == ["person"]  # weights=null: sized for the configured dataset's classes
    rgb = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    by_path = segmenter.predict(tmp_path / "x.png")
    check_segmentation(by_path, 97, 131, segmenter.class_names)
    by_array = segmenter.predict(rgb)
    np.testing.assert_allclose(by_array.boxes, by_path.boxes, atol=1e-3)
    # A grayscale PIL image goes through the same loader.
    check_segmentation(segmenter.predict(Image.fromarray(rgb[..., 0])), 97, 131, segmenter.class_names)


def test_predict_batch_keeps_order_and_sizes(segmenter: Segmenter) -> None:
    rng = np.random.default_rng(1)
    sizes = [(50, 70), (81, 40), (8, 8)]  # 8x8: a thumbnail the model upsamples; masks come back at 8x8
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    results = segmenter.predict_batch(images, batch_size=2)
    assert [(r.height, r.width) for r in results] == sizes
    for r, im in zip(results, images):
        check_segmentation(r, *im.shape[:2], segmenter.class_names, some=im.shape[0] > 8)


def test_score_floor_changes_nothing_but_the_work(segmenter: Segmenter) -> None:
    """Raising the detector's own score_thresh to the threshold keeps exactly what a filter after it keeps."""
    model = segmenter.model
    image = np.random.default_rng(2).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    with torch.inference_mode():
        raw = model([tensor])[0]
    assert len(raw["scores"]) >= 3
    thr = float(raw["scores"][1] + raw["scores"][2]) / 2  # keeps the top two
    before = model.roi_heads.score_thresh
    with torch.inference_mode(), score_floor(model, thr):
        assert model.roi_heads.score_thresh == thr
        floored = model([tensor])[0]
    assert model.roi_heads.score_thresh == before
    keep = raw["scores"] > thr
    assert torch.equal(floored["scores"], raw["scores"][keep])
    assert torch.equal(floored["boxes"], raw["boxes"][keep])
    agree = ((floored["masks"] > 0.5) == (raw["masks"][keep] > 0.5)).float().mean()
    assert agree > 0.999


def test_score_floor_on_a_top_level_score_thresh() -> None:
    """RefineMask keeps its threshold on the model itself; the floor is raised and restored there too."""
    model = StubDetector()
    model.score_thresh = 0.05
    with score_floor(model, 0.5):
        assert model.score_thresh == 0.5
    assert model.score_thresh == 0.05
    with score_floor(model, 0.01):  # never lowered
        assert model.score_thresh == 0.05
