"""python -m insseg.data.export_coco: any dataset as COCO-format data; the round trip scores the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from coco_fixtures import every_form_dataset

from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.data.export_coco import main
from insseg.predictions import ImagePrediction, encode_masks


def _noisy_predictions(dataset, seed: int = 0) -> list[ImagePrediction]:
    """Per image: each object shifted by a pixel or two (score falling), plus one false positive."""
    rng = np.random.default_rng(seed)
    preds = []
    for i in range(len(dataset)):
        ann = dataset.annotation(i)
        masks = [np.roll(m, int(rng.integers(-2, 3)), axis=1) for m in ann.masks()]
        fp = np.zeros((ann.height, ann.width), bool)
        fp[:8, :8] = True
        masks = np.stack(masks + [fp])
        ys = [np.nonzero(m) for m in masks]
        boxes = np.array([[x.min(), y.min(), x.max() + 1, y.max() + 1] for y, x in ys], np.float32)
        scores = np.linspace(0.95, 0.55, len(masks)).astype(np.float32)
        preds.append(
            ImagePrediction(
                dataset.file_name(i),
                ann.height,
                ann.width,
                boxes,
                scores,
                np.ones(len(masks), np.int64),
                encode_masks(masks),
                class_names=["person"],
            )
        )
    return preds


def test_pennfudan_export_keeps_splits_names_and_image_bytes(tmp_path: Path, pennfudan_root: Path) -> None:
    base = [
        "experiment=smoke",
        "device=cpu",
        f"paths.log_dir={tmp_path / 'o'}",
        "data.max_train_images=null",
        "data.max_eval_images=null",
    ]
    original = compose_config("train", [*base, "data=pennfudan", f"data.root={pennfudan_root}", "data.num_test=4"])
    assert (
        main(
            [*base, "data=pennfudan", f"data.root={pennfudan_root}", "data.num_test=4", f"out={tmp_path / 'exported'}"]
        )
        == 0
    )
    exported = compose_config("train", [*base, "data=coco", f"data.root={tmp_path / 'exported'}"])
    for split in ("train", "eval"):
        a, b = build_dataset(original.data, split), build_dataset(exported.data, split)
        assert [a.file_name(i) for i in range(len(a))] == [b.file_name(i) for i in range(len(b))]
    a, b = build_dataset(original.data, "eval"), build_dataset(exported.data, "eval")
    assert (tmp_path / "exported" / "val2017" / a.file_name(0)).read_bytes() == a.reader.image_path(
        a.indices[0]
    ).read_bytes()
    assert [len(b.annotation(i)) for i in range(len(b))] == [len(a.annotation(i)) for i in range(len(a))]


def test_coco_input_keeps_ids_crowd_and_sub_folders(tmp_path: Path) -> None:
    every_form_dataset(tmp_path / "src")
    src = tmp_path / "src" / "annotations" / "instances_val2017.json"
    overrides = [
        "data=coco",
        f"data.root={tmp_path / 'src'}",
        f"data.train_json={src}",
        "data.train_images=val2017",
        f"paths.log_dir={tmp_path / 'o'}",
        f"out={tmp_path / 'x'}",
    ]
    assert main(overrides) == 0
    data = json.loads((tmp_path / "x" / "annotations" / "instances_val2017.json").read_text())
    assert [im["id"] for im in data["images"]] == [42, 7, 1000, 3]
    assert (tmp_path / "x" / "val2017" / "sub" / "dir" / "b.png").is_file()
    assert data["categories"] == [{"id": 5, "name": "person"}, {"id": 12, "name": "dog"}]
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    assert [(a["image_id"], a["category_id"], a["area"]) for a in crowd] == [(7, 12, 300.0)]
    per_image = {
        im: sorted(a["category_id"] for a in data["annotations"] if a["image_id"] == im and not a["iscrowd"])
        for im in (42, 7, 1000, 3)
    }
    assert per_image == {42: [5, 5, 12], 7: [12], 1000: [], 3: [5]}  # the 2-point polygon draws nothing: dropped


def test_pennfudan_round_trip_gives_the_same_metrics(tmp_path: Path, pennfudan_root: Path) -> None:
    from insseg.evaluation.pipeline import run_evaluation
    from insseg.predictions import PredictionSet

    base = [
        "experiment=smoke",
        "device=cpu",
        f"paths.log_dir={tmp_path / 'o'}",
        "data.max_eval_images=null",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    pennfudan = [*base, "data=pennfudan", f"data.root={pennfudan_root}", "data.num_test=4"]
    assert main([*pennfudan, f"out={tmp_path / 'exported'}"]) == 0
    dataset = build_dataset(compose_config("evaluate", pennfudan).data, "eval")
    PredictionSet(["person"], _noisy_predictions(dataset, seed=1)).write(tmp_path / "preds.json")
    direct = run_evaluation(
        compose_config(
            "evaluate", [*pennfudan, f"eval.predictions={tmp_path / 'preds.json'}"], output_dir=tmp_path / "a"
        )
    )
    exported = run_evaluation(
        compose_config(
            "evaluate",
            [*base, "data=coco", f"data.root={tmp_path / 'exported'}", f"eval.predictions={tmp_path / 'preds.json'}"],
            output_dir=tmp_path / "b",
        )
    )
    assert 0.2 < direct["segm_AP"] < 0.95
    assert {k: v for k, v in direct.items() if k != "dataset"} == {k: v for k, v in exported.items() if k != "dataset"}
