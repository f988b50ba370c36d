"""Shared fixtures: generated datasets in the real on-disk layouts, and composed smoke configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from insseg.config import compose_config
from insseg.data.synthetic import generate_pennfudan, generate_voc

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pennfudan_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small PennFudanPed-layout folder (image 0 has no objects)."""
    return generate_pennfudan(tmp_path_factory.mktemp("data") / "PennFudanPed", num_images=12, height=96, width=128)


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small VOC2012-layout folder with the 255 void band."""
    return generate_voc(tmp_path_factory.mktemp("data") / "VOC2012", num_images=9, height=96, width=128)


# A small, fast model for inference tests: random weights (nothing to download), 64-96 px, at most 5 detections.
SMALL_MODEL = [
    "experiment=smoke",
    "model.weights=null",
    "device=cpu",
    "model.min_size=64",
    "model.max_size=96",
    "model.detections_per_img=5",
    "model.rpn_pre_nms_top_n_test=50",
    "model.rpn_post_nms_top_n_test=20",
]


def smoke_overrides(tmp_path: Path, data_root: Path | None = None, layout: str = "pennfudan") -> list[str]:
    """Overrides for a fast CPU run with every output below ``tmp_path``."""
    overrides = [
        "experiment=smoke",
        "device=cpu",
        f"paths.log_dir={tmp_path / 'outputs'}",
        f"paths.data_dir={tmp_path / 'data'}",
        "model.min_size=96",
        "model.max_size=128",
        "data.max_train_images=4",
        "data.max_eval_images=2",
    ]
    if data_root is not None:
        overrides += [f"data={'voc' if layout == 'voc' else 'pennfudan'}", f"data.root={data_root}", "data.num_test=4"]
    return overrides


@pytest.fixture
def smoke_cfg(tmp_path: Path, pennfudan_root: Path):
    """A composed train config: smoke model on the generated PennFudanPed, outputs in tmp."""
    return compose_config("train", smoke_overrides(tmp_path, pennfudan_root), output_dir=tmp_path / "run")
