"""The ``data`` part of the schema (``DataConfig``, ``data=`` options in conf/data/); the rest is in
:mod:`insseg.config.schema`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyntheticConfig:
    """How ``data=synthetic`` generates its dataset when the root does not exist yet."""

    num_images: int = 24
    height: int = 160
    width: int = 224
    max_objects: int = 3
    seed: int = 0


@dataclass
class DataConfig:
    name: str = "synthetic"  # pennfudan | voc | coco | lvis | cityscapes | synthetic
    # Which reader: pennfudan (PNGImages/ + PedMasks/), voc (VOC2012 layout), coco (COCO-format JSON + images),
    # lvis (an LVIS v1 JSON + the COCO 2017 image folders; scored with the LVIS protocol) or cityscapes
    # (leftImg8bit/ + gtFine/; scored with cityscapesScripts' AP beside COCO AP).
    layout: str = "pennfudan"
    root: str = "${paths.data_dir}/synthetic"
    # Missing root: download (pennfudan), generate (synthetic) or fail with instructions (voc).
    download: bool = True
    url: str | None = None
    sha256: str | None = None
    # PennFudanPed has no official split: a seeded permutation holds out ``num_test`` images.
    num_test: int = 50
    split_seed: int = 0
    # VOC: ImageSets/Segmentation/<name>.txt; Cityscapes: leftImg8bit/<name>/ (train | val | test)
    train_split: str = "train"
    eval_split: str = "val"
    # COCO layout: instance JSON and the folder its file_names are relative to, per split (relative to root,
    # or absolute). Defaults: the COCO 2017 layout.
    train_json: str = "annotations/instances_train2017.json"
    train_images: str = "train2017"
    eval_json: str = "annotations/instances_val2017.json"
    eval_images: str = "val2017"
    # Repeat-factor sampling for training (the LVIS recipe; COCO-format data only): an image is drawn
    # max(1, sqrt(t / f)) times per epoch for its rarest category's image fraction f. data=lvis: 0.001; null = off.
    repeat_factor_threshold: float | None = None
    # Detections per image the dataset's protocol scores (COCO 100, LVIS 300); model.detections_per_img of
    # model=maskrcnn follows it (RefineMask's checkpoints carry their own: 300 for the LVIS ones).
    detections_per_img: int = 100
    # Caps for quick runs (experiment=smoke); null = all images.
    max_train_images: int | None = None
    max_eval_images: int | None = None
    num_workers: int = 2
    # Training augmentation (insseg.data.augment, docs/training.md): a name or a list of names applied together,
    # hflip | multiscale | lsj | photometric | none; every pipeline also flips with train.hflip_prob.
    augment: Any = "hflip"
    # multiscale: shorter sides drawn per image (null: model.min_size x 0.80, 0.84, ... 1.00) and the longer
    # side's cap (null: model.max_size).
    multiscale_sizes: list[int] | None = None
    multiscale_max_size: int | None = None
    # lsj: the square crop (null: model.min_size) and the jitter of the scale that fits the image into it.
    lsj_size: int | None = None
    lsj_scale_range: list[float] = field(default_factory=lambda: [0.1, 2.0])
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
