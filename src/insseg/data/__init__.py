"""Datasets: on-disk readers (COCO-format JSON, PennFudanPed, VOC 2012), synthetic generators, the dataset check,
the COCO export, download, torch datasets."""

from insseg.data.annotations import InstanceAnnotation
from insseg.data.build import build_dataset, build_reader, ensure_dataset, pennfudan_split
from insseg.data.dataset import InstanceSegmentationDataset, collate

__all__ = [
    "InstanceAnnotation",
    "InstanceSegmentationDataset",
    "build_dataset",
    "build_reader",
    "collate",
    "ensure_dataset",
    "pennfudan_split",
]
