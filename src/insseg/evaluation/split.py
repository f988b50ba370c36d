"""Which images an evaluation scores, and whether a checkpoint was trained on some of them."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from insseg.data import build_dataset
from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import ConfigError
from insseg.utils.logging import log

PENNFUDAN_SPLITS = {"train": "train", "test": "eval", "val": "eval", "eval": "eval"}
# Data settings that decide a seeded split: a checkpoint trained with others saw some of these test images.
SPLIT_KEYS = ("name", "split_seed", "num_test")


def eval_dataset(cfg: DictConfig) -> tuple[InstanceSegmentationDataset, str]:
    """The dataset to evaluate and its split's name: ``eval.split`` or the dataset's evaluation split."""
    split = cfg.eval.split
    if cfg.data.layout in ("coco", "lvis"):  # data.train_json or data.eval_json
        if split not in (None, "train", "val", "eval"):
            raise ConfigError(f"config key 'eval.split' is '{split}'; for COCO-format data use train or val (or null)")
        return (
            (build_dataset(cfg.data, "train"), "train")
            if split == "train"
            else (build_dataset(cfg.data, "eval"), "val")
        )
    if cfg.data.layout in ("voc", "cityscapes"):  # named splits: data.eval_split, or eval.split
        data_cfg = cfg.data
        if split is not None:
            data_cfg = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
            data_cfg.eval_split = split
        return build_dataset(data_cfg, "eval"), data_cfg.eval_split
    if split is None:
        return build_dataset(cfg.data, "eval"), "test"
    if split not in PENNFUDAN_SPLITS:
        raise ConfigError(
            f"config key 'eval.split' is '{split}'; for the {cfg.data.name} dataset use train or test (or null)"
        )
    which = PENNFUDAN_SPLITS[split]
    return build_dataset(cfg.data, which), "train" if which == "train" else "test"


def split_differences(training_config: Any, data_cfg: Any) -> list[str]:
    """The split settings (``data.split_seed``, ``data.num_test``, ``data.name``) in which the checkpoint's
    training run and this evaluation differ, as ``key: trained X, evaluated Y``. Only for seeded splits."""
    trained = (training_config or {}).get("data") or {}
    if (
        data_cfg.layout in ("voc", "coco", "lvis", "cityscapes")
        or not trained
        or trained.get("layout", data_cfg.layout) != data_cfg.layout
    ):
        return []
    return [
        f"data.{k}: trained {trained[k]}, evaluated {data_cfg[k]}"
        for k in SPLIT_KEYS
        if k in trained and trained[k] != data_cfg[k]
    ]


def warn_if_split_differs(training_config: Any, data_cfg: Any) -> None:
    differences = split_differences(training_config, data_cfg)
    if differences:
        log.warning(
            "the checkpoint was trained with another split than the one evaluated ("
            + "; ".join(differences)
            + "): some evaluated images may have been training images, which inflates every metric. "
            "Evaluate with the training run's data settings."
        )
