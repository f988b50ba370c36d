"""Dataset readers on generated data in the real layouts, the seeded split, and bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from insseg.config import compose_config
from insseg.data import InstanceAnnotation, build_dataset, pennfudan_split
from insseg.data.augment import AugmentPipeline, AugmentSettings
from insseg.data.dataset import target_from_annotation
from insseg.data.readers import PennFudanReader, VOCReader
from insseg.data.synthetic import generate_pennfudan
from insseg.errors import DatasetError


def _data_cfg(tmp_path: Path, root: Path, layout: str = "pennfudan"):
    data = "voc" if layout == "voc" else "pennfudan"
    return compose_config(
        "train", [f"data={data}", f"data.root={root}", "data.num_test=4", f"paths.log_dir={tmp_path}"]
    ).data


def test_pennfudan_reader_reads_instances(pennfudan_root: Path) -> None:
    reader = PennFudanReader(pennfudan_root)
    assert len(reader) == 12 and reader.class_names == ("person",)
    empty = reader.annotation(0)
    assert len(empty) == 0 and empty.masks().shape == (0, 96, 128)
    ann = reader.annotation(1)
    raw = np.asarray(Image.open(pennfudan_root / "PedMasks" / "SynthPed00001_mask.png"))
    assert ann.instance_ids.tolist() == sorted(set(np.unique(raw).tolist()) - {0})
    assert (ann.masks().sum(axis=(1, 2)) == [(raw == i).sum() for i in ann.instance_ids]).all()
    assert (ann.labels == 1).all()
    assert reader.load_image(1).shape == (96, 128, 3) and reader.load_image(1).dtype == np.uint8


def test_voc_reader_keeps_void_and_reads_classes(voc_root: Path) -> None:
    reader = VOCReader(voc_root, "train")
    ann = next(reader.annotation(i) for i in range(len(reader)) if len(reader.annotation(i)) > 0)
    assert ann.void().any(), "the 255 band must survive reading (palette indices, not colours)"
    assert 255 not in ann.instance_ids
    class_map = np.asarray(Image.open(voc_root / "SegmentationClass" / ann.file_name.replace(".jpg", ".png")))
    for inst_id, label in zip(ann.instance_ids, ann.labels):
        assert np.all(class_map[ann.instance_map == inst_id] == label)
    assert set(VOCReader(voc_root, "val").file_name(i) for i in range(3)).isdisjoint(
        reader.file_name(i) for i in range(len(reader))
    )


def test_non_contiguous_instance_ids_are_kept(tmp_path: Path) -> None:
    root = generate_pennfudan(tmp_path / "p", num_images=2, height=64, width=64)
    mask = np.zeros((64, 64), np.uint8)
    mask[5:20, 5:20] = 3
    mask[30:50, 30:50] = 7
    Image.fromarray(mask, mode="L").save(root / "PedMasks" / "SynthPed00001_mask.png")
    ann = PennFudanReader(root).annotation(1)
    assert ann.instance_ids.tolist() == [3, 7]


def test_dataset_targets_follow_torchvision(tmp_path: Path, pennfudan_root: Path) -> None:
    ds = build_dataset(_data_cfg(tmp_path, pennfudan_root), "train")
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.dtype == torch.float32 and image.min() >= 0 and image.max() <= 1
        n = len(target["labels"])
        assert target["boxes"].shape == (n, 4) and target["masks"].shape == (n, *image.shape[1:])
        if n:
            assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()


def test_seeded_split_is_reproducible_and_disjoint() -> None:
    train_a, test_a = pennfudan_split(170, 50, seed=0)
    train_b, test_b = pennfudan_split(170, 50, seed=0)
    assert (train_a, test_a) == (train_b, test_b)
    assert len(test_a) == 50 and len(train_a) == 120 and not set(train_a) & set(test_a)
    assert pennfudan_split(170, 50, seed=1)[1] != test_a


def test_training_boxes_are_the_pixel_extent_and_flip_with_the_masks() -> None:
    """pycocotools' convention: a mask over columns 0..2, rows 1..2 has the box [0, 1, 3, 3]."""
    instance_map = np.zeros((4, 10), np.uint8)
    instance_map[1:3, 0:3] = 1
    ann = InstanceAnnotation("a.png", 4, 10, instance_map, np.array([1]), np.array([1]))
    target = target_from_annotation(ann, image_id=0)
    assert target["boxes"].tolist() == [[0.0, 1.0, 3.0, 3.0]]
    image, flipped = AugmentPipeline(AugmentSettings(("hflip",), hflip_prob=1.0))(torch.zeros(3, 4, 10), target)
    assert flipped["boxes"].tolist() == [[7.0, 1.0, 10.0, 3.0]]
    assert flipped["masks"][0, 1, 7:].all() and not flipped["masks"][0, :, :7].any()
    # The flipped target is exactly the target of the mirrored annotation.
    mirrored = InstanceAnnotation("a.png", 4, 10, instance_map[:, ::-1].copy(), np.array([1]), np.array([1]))
    assert torch.equal(flipped["boxes"], target_from_annotation(mirrored, image_id=0)["boxes"])


def test_missing_mask_is_named(tmp_path: Path) -> None:
    root = generate_pennfudan(tmp_path / "p", num_images=3, height=48, width=48)
    (root / "PedMasks" / "SynthPed00002_mask.png").unlink()
    with pytest.raises(DatasetError, match="SynthPed00002_mask.png"):
        PennFudanReader(root)


def test_mask_of_wrong_size_is_named_before_training(tmp_path: Path) -> None:
    root = generate_pennfudan(tmp_path / "p", num_images=8, height=48, width=48)
    Image.fromarray(np.zeros((40, 48), np.uint8), mode="L").save(root / "PedMasks" / "SynthPed00003_mask.png")
    with pytest.raises(DatasetError, match=r"SynthPed00003_mask\.png is 48x40 .* 48x48"):
        build_dataset(_data_cfg(tmp_path, root), "train")
        build_dataset(_data_cfg(tmp_path, root), "eval")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = generate_pennfudan(tmp_path / "p", num_images=8, height=48, width=48)
    (root / "PNGImages" / "SynthPed00004.png").write_bytes(b"this is not a png")
    with pytest.raises(DatasetError, match="SynthPed00004.png"):
        reader = PennFudanReader(root)
        reader.verify()


def _exif_rotated_pennfudan(tmp_path: Path, mask_upright: bool) -> Path:
    """A 48x32 (W x H) photo stored sideways (32x48) with EXIF orientation 6, so viewers show it 48x32."""
    root = generate_pennfudan(tmp_path / "p", num_images=2, height=32, width=48)
    stored = Image.open(root / "PNGImages" / "SynthPed00001.png").convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    stored.save(root / "PNGImages" / "SynthPed00001.png", exif=exif)
    mask = np.zeros((32, 48) if mask_upright else (48, 32), np.uint8)
    mask[5:20, 4:12] = 1
    Image.fromarray(mask, mode="L").save(root / "PedMasks" / "SynthPed00001_mask.png")
    return root


def test_exif_orientation_is_applied_to_dataset_images(tmp_path: Path) -> None:
    """Training, evaluation and predict read the same (upright) image, so masks drawn upright fit."""
    from insseg.io.images import load_image_rgb

    root = _exif_rotated_pennfudan(tmp_path, mask_upright=True)
    reader = PennFudanReader(root)
    reader.verify()
    image = reader.load_image(1)
    assert image.shape == (32, 48, 3)
    np.testing.assert_array_equal(image, load_image_rgb(root / "PNGImages" / "SynthPed00001.png"))
    assert reader.annotation(1).masks().shape == (1, 32, 48)


def test_a_mask_of_the_unrotated_image_is_an_error_naming_both_sizes(tmp_path: Path) -> None:
    root = _exif_rotated_pennfudan(tmp_path, mask_upright=False)
    with pytest.raises(
        DatasetError,
        match=r"SynthPed00001_mask.png is 32x48, the size of image .* as stored, but "
        r"the image's EXIF orientation turns it to 48x32",
    ):
        PennFudanReader(root).verify()


def test_voc_missing_split_file_explains_layout(tmp_path: Path, voc_root: Path) -> None:
    root = tmp_path / "VOC2012"
    shutil.copytree(voc_root, root)
    (root / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetError, match="val.txt.*JPEGImages"):
        VOCReader(root, "val")


def test_missing_voc_root_fails_fast_with_instructions(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist.*data.root"):
        build_dataset(_data_cfg(tmp_path, tmp_path / "nowhere", layout="voc"), "eval")


def test_synthetic_dataset_is_generated_on_first_use(tmp_path: Path) -> None:
    cfg = compose_config("train", [f"paths.data_dir={tmp_path}", "data.synthetic.num_images=10", "data.num_test=3"])
    ds = build_dataset(cfg.data, "eval")
    assert len(ds) == 3 and (tmp_path / "synthetic_pennfudan" / "PNGImages").is_dir()
    cfg = compose_config("train", [f"paths.data_dir={tmp_path}", "data.layout=voc", "data.synthetic.num_images=10"])
    # 10 images, round(10 * 0.34) = 3 in val: 7 in train.
    assert len(build_dataset(cfg.data, "train")) == 7
