"""RefineMask through the toolkit's own entry points: predict.py on the photos reproduces the official
detections as the reference checker judges them (the acceptance test of the RefineMask issue)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from refinemask_fixtures import checkpoint_path, require_fixture
from test_refinemask_detector import compare_module

from insseg.config import compose_config
from insseg.inference.predict_pipeline import run_prediction


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoint_path(tmp_path_factory)


def _judge(name: str, predictions: dict) -> dict:
    golden = json.loads(require_fixture(f"full_visible_{name}.float64.json").read_text())
    ok, result = compare_module().compare(golden, predictions, verbose=False)
    assert ok, f"{name}: {result}"
    return result


def test_predict_reproduces_official_detections(tmp_path: Path, ckpt: Path) -> None:
    """run_prediction(cfg) on chelsea (the smallest photo): every stage of the toolkit, rounding of the JSON
    included."""
    photo = tmp_path / "in" / "chelsea.png"
    photo.parent.mkdir()
    shutil.copy(require_fixture("chelsea.png"), photo)
    cfg = compose_config(
        "predict",
        [
            "model=refinemask",
            f"model.weights={ckpt}",
            "predict.score_threshold=0",
            "device=cpu",
            f"input={photo}",
            "predict.save_overlays=false",
            "predict.save_masks=false",
        ],
        output_dir=tmp_path / "run",
    )
    run_prediction(cfg)
    predictions = json.loads((tmp_path / "run" / "predictions.json").read_text())
    assert predictions["images"][0]["file_name"] == "chelsea.png"
    _judge("chelsea", predictions)


@pytest.mark.slow
def test_predict_cli_reproduces_official_detections_on_three_photos(tmp_path: Path, ckpt: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        shutil.copy(require_fixture(f"{name}.png"), folder / f"{name}.png")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "predict.py"),
            "model=refinemask",
            f"model.weights={ckpt}",
            "predict.score_threshold=0",
            "device=cpu",
            f"input={folder}",
            f"paths.log_dir={tmp_path / 'outputs'}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next((tmp_path / "outputs" / "predict").glob("*/*"))
    predictions = json.loads((run_dir / "predictions.json").read_text())
    for name in ("astronaut", "coffee", "chelsea"):
        one = {
            "images": [im for im in predictions["images"] if im["file_name"] == f"{name}.png"],
            "categories": predictions["categories"],
        }
        image_id = one["images"][0]["id"]
        one["annotations"] = [a for a in predictions["annotations"] if a["image_id"] == image_id]
        _judge(name, one)
