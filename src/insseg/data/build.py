"""From a data config to readers and datasets: make sure the data exists, split it, apply transforms."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from insseg.data.augment import build_augment
from insseg.data.cityscapes import CityscapesReader
from insseg.data.coco import CocoReader
from insseg.data.dataset import InstanceSegmentationDataset
from insseg.data.download import download_and_extract
from insseg.data.lvis import LvisReader
from insseg.data.readers import InstanceReader, PennFudanReader, VOCReader
from insseg.data.synthetic import generate_coco, generate_pennfudan, generate_voc
from insseg.data.synthetic_cityscapes import generate_cityscapes
from insseg.data.synthetic_lvis import generate_lvis
from insseg.errors import DatasetError
from insseg.utils.logging import log

PENNFUDAN_EXPECTED = ("PNGImages", "PedMasks")
VOC_EXPECTED = ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation")
CITYSCAPES_EXPECTED = ("leftImg8bit", "gtFine")


def ensure_dataset(data_cfg: Any) -> Path:
    """Return the dataset root, generating (synthetic) or downloading (pennfudan, voc) it when missing."""
    root = Path(data_cfg.root)
    if root.exists():
        return root
    if data_cfg.name == "synthetic":
        return _generate_synthetic(data_cfg, root)
    if data_cfg.layout in ("coco", "lvis"):
        return root  # the annotation files may be given by absolute paths; coco_paths names what is missing
    if data_cfg.layout == "cityscapes":  # behind a login: no download
        raise DatasetError(
            f"dataset folder {root} does not exist. Download leftImg8bit_trainvaltest.zip and "
            f"gtFine_trainvaltest.zip from {data_cfg.url or 'https://www.cityscapes-dataset.com/downloads/'} (it "
            f"needs a login) and unzip both into {root}, so that it holds {' and '.join(CITYSCAPES_EXPECTED)}, or "
            "set data.root=<folder>."
        )
    expected = PENNFUDAN_EXPECTED if data_cfg.layout == "pennfudan" else VOC_EXPECTED
    if data_cfg.download and data_cfg.url:
        log.info(f"dataset {data_cfg.name} not found at {root}; downloading {data_cfg.url}")
        return download_and_extract(data_cfg.url, root, expected, sha256=data_cfg.sha256)
    where = data_cfg.url or "the dataset's website"
    raise DatasetError(
        f"dataset folder {root} does not exist. Get {data_cfg.name} from {where}, extract it so that {root} "
        f"holds {', '.join(expected)}, or set data.root=<folder>"
        + (" (or data.download=true to fetch it)" if data_cfg.url and not data_cfg.download else "")
        + "."
    )


def _generate_synthetic(data_cfg: Any, root: Path) -> Path:
    s = data_cfg.synthetic
    generators = {
        "pennfudan": generate_pennfudan,
        "voc": generate_voc,
        "coco": generate_coco,
        "lvis": generate_lvis,
        "cityscapes": generate_cityscapes,
    }
    generate = generators[data_cfg.layout]
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{root.name}.", dir=root.parent) as tmp:
        generate(
            Path(tmp) / "data",
            num_images=s.num_images,
            height=s.height,
            width=s.width,
            max_objects=s.max_objects,
            seed=s.seed,
        )
        if not root.exists():  # another process (a DDP rank) may have won the race
            (Path(tmp) / "data").rename(root)
    return root


def build_reader(data_cfg: Any, split: str) -> tuple[InstanceReader, list[int]]:
    """The reader for ``split`` ('train' or 'eval') and the indices of that split's images, after the fast check
    (the files' structure, every image present at the size its labels have; warnings logged as one line)."""
    reader, indices = open_reader(data_cfg, split)
    reader.verify(indices)
    return reader, indices


def open_reader(data_cfg: Any, split: str) -> tuple[InstanceReader, list[int]]:
    """:func:`build_reader` without the check (``insseg.data.check`` runs the full one)."""
    root = ensure_dataset(data_cfg)
    if data_cfg.layout in ("coco", "lvis"):
        reader: InstanceReader = (LvisReader if data_cfg.layout == "lvis" else CocoReader)(*coco_paths(data_cfg, split))
        indices = list(range(len(reader)))
    elif data_cfg.layout == "voc":
        reader = VOCReader(root, data_cfg.train_split if split == "train" else data_cfg.eval_split)
        indices = list(range(len(reader)))
    elif data_cfg.layout == "cityscapes":
        reader = CityscapesReader(root, data_cfg.train_split if split == "train" else data_cfg.eval_split)
        indices = list(range(len(reader)))
    else:
        reader = PennFudanReader(root)
        indices = pennfudan_split(len(reader), data_cfg.num_test, data_cfg.split_seed)[0 if split == "train" else 1]
    limit = data_cfg.max_train_images if split == "train" else data_cfg.max_eval_images
    if limit is not None:
        indices = indices[:limit]
    if not indices:
        raise DatasetError(
            f"the {split} split of {root} is empty (check data.num_test and the split settings, or the "
            "annotation file's images)"
        )
    return reader, indices


def coco_paths(data_cfg: Any, split: str) -> tuple[Path, Path]:
    """The annotation file and image folder of ``split`` (``data.train_json``/``data.train_images`` or the
    ``eval_`` pair; relative to ``data.root`` unless absolute), checked to exist."""
    key = "train" if split == "train" else "eval"
    root = Path(data_cfg.root)
    json_path, images = (root / str(data_cfg[f"{key}_{k}"]) for k in ("json", "images"))
    hint = f" (data.root={root} does not exist)" if not root.exists() else ""
    if not json_path.is_file():
        raise DatasetError(
            f"data.{key}_json: annotation file {json_path} does not exist{hint}. Point data.root at the folder "
            f"holding it, or set data.{key}_json=<file> (relative to data.root, or absolute)"
        )
    if not images.is_dir():
        raise DatasetError(
            f"data.{key}_images: image folder {images} does not exist{hint}; set data.{key}_images=<folder> "
            f"(the folder that the file_name entries of {json_path.name} are relative to)"
        )
    return json_path, images


def pennfudan_split(num_images: int, num_test: int, seed: int) -> tuple[list[int], list[int]]:
    """Seeded, reproducible train/test split: the same seed gives the same held-out images everywhere."""
    if num_test >= num_images:
        raise DatasetError(
            f"data.num_test={num_test} leaves no training images out of {num_images}; lower data.num_test"
        )
    perm = np.random.default_rng(seed).permutation(num_images).tolist()
    return sorted(perm[num_test:]), sorted(perm[:num_test])


def build_dataset(
    data_cfg: Any, split: str, hflip_prob: float = 0.0, model_sizes: tuple[int | None, int | None] = (None, None)
) -> InstanceSegmentationDataset:
    """The dataset of ``split``; the training split gets the ``data.augment`` pipeline (insseg.data.augment)
    when ``hflip_prob`` > 0 or a pipeline other than hflip is named. ``model_sizes``: the model's
    (min_size, max_size), what null multiscale/lsj sizes follow."""
    reader, indices = build_reader(data_cfg, split)
    transforms = build_augment(data_cfg, hflip_prob, model_sizes) if split == "train" else None
    return InstanceSegmentationDataset(reader, indices, transforms)
