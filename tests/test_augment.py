"""data.augment: torchvision.transforms.v2 pipelines keep each box equal to its mask's extent and drop the objects
that a crop or a downscale empties; designed images with objects at the border give known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from insseg.config import compose_config
from insseg.config.validate import AUGMENT_PIPELINES, RESIZING_PIPELINES
from insseg.data.augment import PIPELINES, RESIZING, AugmentPipeline, AugmentSettings, augment_names
from insseg.errors import ConfigError


def _target(h: int, w: int, rects: list[tuple[int, int, int, int]]) -> dict:
    """Rectangles (x0, y0, x1, y1), end exclusive, labels 1, 2, ... in order; boxes are their extents."""
    masks = torch.zeros((len(rects), h, w), dtype=torch.uint8)
    for k, (x0, y0, x1, y1) in enumerate(rects):
        masks[k, y0:y1, x0:x1] = 1
    boxes = torch.tensor([list(r) for r in rects], dtype=torch.float32).reshape(-1, 4)
    labels = torch.arange(1, len(rects) + 1, dtype=torch.int64)
    return {"boxes": boxes, "labels": labels, "masks": masks, "image_id": 0}


# A 64 x 96 image: one object on the left border, one in the bottom-right corner, one 2 x 2 in the middle.
BORDER_OBJECTS = [(0, 20, 10, 40), (86, 54, 96, 64), (47, 31, 49, 33)]


def _extent(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _check_consistent(image: torch.Tensor, target: dict) -> None:
    masks = target["masks"].numpy()
    assert masks.shape[1:] == tuple(image.shape[-2:])
    assert len(masks) == len(target["boxes"]) == len(target["labels"]) == len(target["area"])
    for k, mask in enumerate(masks):
        assert mask.any(), "an emptied object was kept"
        assert target["boxes"][k].tolist() == _extent(mask)
        assert target["area"][k].item() == mask.sum()
    assert len(set(target["labels"].tolist())) == len(masks)  # each object at most once


PIPELINE_CASES = [
    ("hflip",),
    ("multiscale",),
    ("lsj",),
    ("photometric",),
    ("multiscale", "photometric"),
    ("lsj", "photometric"),
]


@pytest.mark.parametrize("names", PIPELINE_CASES)
def test_every_pipeline_keeps_boxes_equal_to_mask_extents(names):
    settings = AugmentSettings(names, multiscale_sizes=(32, 48, 80), multiscale_max_size=160, lsj_size=64)
    pipeline = AugmentPipeline(settings)
    kept = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = pipeline(torch.rand(3, 64, 96), _target(64, 96, BORDER_OBJECTS))
        assert image.dtype == torch.float32 and type(image) is torch.Tensor
        _check_consistent(image, target)
        kept.add(len(target["labels"]))
        if "lsj" in names:
            assert tuple(image.shape[-2:]) == (64, 64)
    if "lsj" in names:
        assert min(kept) < 3  # scales down to 0.1 and crops up to 2x empty some objects within 12 draws


def test_lsj_drops_exactly_the_objects_its_geometry_emptied():
    """The same draws without the sanitising step: the kept labels are those whose masks survived."""
    pipeline = AugmentPipeline(AugmentSettings(("lsj",), lsj_size=64, lsj_scale_range=(0.1, 2.0)))
    dropped_any = False
    for seed in range(30):
        torch.manual_seed(seed)
        _, target = pipeline(torch.rand(3, 64, 96), _target(64, 96, BORDER_OBJECTS))
        torch.manual_seed(seed)
        t = _target(64, 96, BORDER_OBJECTS)
        img = tv_tensors.Image(torch.rand(3, 64, 96))
        sample = {
            "boxes": tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=(64, 96)),
            "masks": tv_tensors.Mask(t["masks"]),
            "labels": t["labels"],
        }
        for step in pipeline.stages():
            img, sample = step(img, sample)
        survived = [int(lab) for lab, m in zip(sample["labels"], sample["masks"]) if m.any()]
        assert target["labels"].tolist() == survived
        dropped_any |= len(survived) < 3
    assert dropped_any


def test_a_downscale_that_misses_a_small_object_drops_it():
    """Scale 0.1 with nearest-neighbour masks: output pixel j samples input column 10 j, which misses a 1 x 1
    object at (5, 5); the 40 x 40 object stays, its box the extent of its resized mask."""
    settings = AugmentSettings(("lsj",), hflip_prob=0.0, lsj_size=100, lsj_scale_range=(0.1, 0.1))
    torch.manual_seed(0)
    image, target = AugmentPipeline(settings)(
        torch.rand(3, 100, 100), _target(100, 100, [(5, 5, 6, 6), (0, 0, 40, 40)])
    )
    assert tuple(image.shape[-2:]) == (100, 100)  # 10 x 10 of image, padded (at a random place) to 100 x 100
    assert target["labels"].tolist() == [2]
    x0, y0, x1, y1 = target["boxes"][0].tolist()
    assert (x1 - x0, y1 - y0) == (4.0, 4.0)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    assert int((image == mean).all(0).sum()) == 100 * 100 - 10 * 10  # the padding is the models' mean


def test_multiscale_resizes_the_shorter_side_to_a_listed_size():
    settings = AugmentSettings(("multiscale",), hflip_prob=0.0, multiscale_sizes=(32,), multiscale_max_size=1000)
    image, target = AugmentPipeline(settings)(torch.rand(3, 64, 96), _target(64, 96, BORDER_OBJECTS[:2]))
    assert tuple(image.shape) == (3, 32, 48)
    assert target["boxes"].tolist() == [[0.0, 10.0, 5.0, 20.0], [43.0, 27.0, 48.0, 32.0]]
    _check_consistent(image, target)
    capped = AugmentSettings(("multiscale",), hflip_prob=0.0, multiscale_sizes=(64,), multiscale_max_size=48)
    assert tuple(AugmentPipeline(capped)(torch.rand(3, 64, 96), _target(64, 96, []))[0].shape) == (3, 32, 48)


def test_hflip_flips_on_the_same_draws_as_the_old_hand_written_flip():
    """The tutorial's flip drew torch.rand(()) < p: the same seeds flip the same images (identical targets)."""
    pipeline = AugmentPipeline(AugmentSettings(("hflip",), hflip_prob=0.5))
    image = torch.rand(3, 64, 96)
    flips = set()
    for seed in range(20):
        torch.manual_seed(seed)
        expected_flip = bool(torch.rand(()) < 0.5)
        flips.add(expected_flip)
        torch.manual_seed(seed)
        _, target = pipeline(image, _target(64, 96, BORDER_OBJECTS[:1]))
        assert target["boxes"].tolist() == ([[86.0, 20.0, 96.0, 40.0]] if expected_flip else [[0.0, 20.0, 10.0, 40.0]])
    assert flips == {True, False}


def test_photometric_changes_colours_only():
    pipeline = AugmentPipeline(AugmentSettings(("photometric",), hflip_prob=0.0))
    image = torch.rand(3, 64, 96)
    changed = False
    for seed in range(5):
        torch.manual_seed(seed)
        out, target = pipeline(image, _target(64, 96, BORDER_OBJECTS))
        assert target["boxes"].tolist() == [[float(v) for v in r] for r in BORDER_OBJECTS]
        changed |= not torch.equal(out, image)
    assert changed


def test_names_and_config_checks():
    assert PIPELINES == AUGMENT_PIPELINES and RESIZING == RESIZING_PIPELINES
    assert augment_names("lsj") == ("lsj",) and augment_names(["multiscale", "photometric"]) == (
        "multiscale",
        "photometric",
    )
    assert augment_names("none") == ()
    cfg = compose_config("train", ["experiment=smoke", "data.augment=[lsj,photometric]"])
    assert list(cfg.data.augment) == ["lsj", "photometric"]
    with pytest.raises(ConfigError, match=r"data.augment.*\['lsjj'\]"):
        compose_config("train", ["data.augment=lsjj"])
    with pytest.raises(ConfigError, match="combines multiscale and lsj"):
        compose_config("train", ["data.augment=[multiscale,lsj]"])
    with pytest.raises(ConfigError, match="model=maskrcnn"):
        compose_config("train", ["model=refinemask", "data.augment=lsj", "model.weights=null"])
