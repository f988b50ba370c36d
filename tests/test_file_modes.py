"""Every file a run writes gets the mode a plain ``open(path, "w")`` gives under the user's umask (0644 under 022),
so colleagues can read a run and a web server can serve report.html; atomic writes are no exception."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from insseg.config import compose_config
from insseg.engine.trainer import run_training
from insseg.evaluation.pipeline import run_evaluation
from insseg.inference.predict_pipeline import run_prediction
from insseg.utils.atomic import atomic_path, atomic_write_json, atomic_write_text

FAST = [
    "experiment=smoke",
    "model.weights=null",
    "device=cpu",
    "device.num_threads=1",
    "model.min_size=64",
    "model.max_size=96",
    "data.synthetic.num_images=6",
    "data.num_test=2",
    "data.synthetic.height=64",
    "data.synthetic.width=80",
]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}


def test_atomic_writes_follow_the_umask(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"x": 1})
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"x")
    os.umask(0o077)
    atomic_write_text(tmp_path / "private.txt", "x")
    assert modes(tmp_path) == {"a.txt": 0o644, "b.json": 0o644, "c.bin": 0o644, "private.txt": 0o600}
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_every_artefact_of_train_evaluate_predict_is_readable(tmp_path, umask_022):
    paths = [f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}"]
    paths.append(f"paths.cache_dir={tmp_path / 'cache'}")
    train = tmp_path / "train"
    run_training(compose_config("train", [*FAST, *paths, "data.max_train_images=2", "logger=csv"], output_dir=train))
    ckpt = train / "checkpoints" / "last.pt"
    evaluate = tmp_path / "evaluate"
    run_evaluation(compose_config("evaluate", [*FAST, *paths, f"model.weights={ckpt}"], output_dir=evaluate))
    images = tmp_path / "data" / "synthetic_pennfudan" / "PNGImages"
    predict = tmp_path / "predict"
    run_prediction(
        compose_config(
            "predict",
            [*FAST, *paths, f"model.weights={ckpt}", f"input={images}", "predict.report=true"],
            output_dir=predict,
        )
    )
    found = {f"{d.name}/{name}": mode for d in (train, evaluate, predict) for name, mode in modes(d).items()}
    for expected in (
        "train/checkpoints/last.pt",
        "train/metrics.json",
        "evaluate/metrics.json",
        "evaluate/metrics.xlsx",
        "evaluate/report.html",
        "evaluate/predictions.json",
        "predict/predictions.json",
        "predict/contact_sheet.html",
    ):
        assert expected in found, (expected, sorted(found))
    assert any(name.startswith("predict/overlays/") for name in found)
    assert {name: mode for name, mode in found.items() if mode != 0o644} == {}
