"""python -m insseg.data.check: every problem named with its file and annotation id; counts; exit status."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from coco_fixtures import H, W, polygon_of, rect_mask, rle_str, write_image, write_json
from PIL import Image

from insseg.data.check import main
from insseg.data.synthetic import generate_pennfudan, generate_voc


def _ann(ann_id: int, image_id: int, seg, cat: int = 4, **extra) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": seg,
        "iscrowd": 0,
        "area": 80.0,
        "bbox": [2.0, 2.0, 10.0, 8.0],
        **extra,
    }


def _dataset(root: Path, annotations: list[dict], images: list[dict] | None = None) -> None:
    images = images or [
        {"id": 1, "file_name": "a.png", "height": H, "width": W},
        {"id": 2, "file_name": "sub/b.png", "height": H, "width": W},
    ]
    for im in images:
        if im["file_name"] != "gone.png":
            write_image(root / "val2017" / im["file_name"])
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 4, "name": "cat"}, {"id": 9, "name": "dog"}],
    }
    write_json(root / "annotations" / "instances_val2017.json", data)
    write_json(root / "annotations" / "instances_train2017.json", data)
    (root / "train2017").symlink_to(root / "val2017")


def _check(root: Path, out: Path, layout: str = "coco") -> tuple[int, dict]:
    data = ["data=coco"] if layout == "coco" else ["data=synthetic", f"data.layout={layout}"]
    status = main([*data, f"data.root={root}", f"out={out}", f"paths.log_dir={out}"])
    return status, json.loads((out / "dataset_report.json").read_text())


def test_every_problem_is_named_and_errors_exit_1(tmp_path: Path, capsys) -> None:
    images = [
        {"id": 1, "file_name": "a.png", "height": H, "width": W},
        {"id": 2, "file_name": "gone.png", "height": H, "width": W},
        {"id": 3, "file_name": "c.png", "height": H + 2, "width": W},
        {"id": 3, "file_name": "d.png", "height": H, "width": W},
    ]
    anns = [
        _ann(10, 1, [polygon_of(2, 2, 12, 10)]),
        _ann(11, 1, [[1, 1, 4, 4]]),  # 2 points
        _ann(12, 77, [polygon_of(2, 2, 12, 10)]),  # unknown image
        _ann(13, 1, [polygon_of(2, 2, 12, 10)], cat=5),  # unknown category
        _ann(10, 1, [polygon_of(2, 2, 12, 10)]),  # duplicate id
        _ann(14, 1, [polygon_of(50, 30, 60, 40)], bbox=[50.0, 30.0, 20.0, 10.0]),  # box outside the 60x40 image
        _ann(15, 1, rle_str(np.zeros((H, W), bool)), cat=9),  # empty mask
        _ann(16, 1, rle_str(np.ones((H, W + 1), bool))),  # a mask of another size than its image
    ]
    _dataset(tmp_path / "d", anns, images)
    status, report = _check(tmp_path / "d", tmp_path / "out")
    assert status == 1
    found = {(p["kind"], p["annotation_id"]) for p in report["problems"] if p["split"] == "eval"}
    assert found == {
        ("duplicate_id", None),  # image id 3 twice
        ("few_points", 11),
        ("unknown_image", 12),
        ("unknown_category", 13),
        ("duplicate_id", 10),
        ("box_outside", 14),
        ("empty_mask", 15),
        ("rle_size", 16),
        ("missing_image", None),
        ("size_mismatch", None),
    }
    by_kind = {p["kind"]: p for p in report["problems"] if p["split"] == "eval"}
    assert by_kind["missing_image"]["file"].endswith("val2017/gone.png")
    assert by_kind["size_mismatch"]["file"].endswith("val2017/c.png")
    assert by_kind["few_points"]["file"].endswith("instances_val2017.json")
    assert report["errors"] == 2 * 7 and report["warnings"] == 2 * 3
    printed = capsys.readouterr().out
    assert "instances_val2017.json, annotation id 13: category_id 5 is not in 'categories'" in printed


def test_counts_per_class_and_sizes_with_only_warnings_exit_0(tmp_path: Path) -> None:
    big = np.zeros((H, W), bool)
    big[:, :] = True  # 2400 pixels: medium
    anns = [
        _ann(1, 1, [polygon_of(2, 2, 12, 10)]),  # small cat
        _ann(2, 1, rle_str(big), cat=9, area=2400.0),  # medium dog
        _ann(3, 2, rle_str(rect_mask(0, 0, 5, 5)), cat=9, iscrowd=1, area=25.0),  # crowd: not an instance
        _ann(4, 2, [polygon_of(2, 2, 12, 10)], bbox=[-3.0, 2.0, 10.0, 8.0]),  # a warning only
    ]
    _dataset(tmp_path / "d", anns)
    status, report = _check(tmp_path / "d", tmp_path / "out")
    assert status == 0 and report["errors"] == 0 and report["warnings"] == 2
    split = report["splits"]["eval"]
    assert split["instances_per_class"] == {"cat": 2, "dog": 1} and split["crowd_regions"] == 1
    assert split["sizes"] == {"small": 2, "medium": 1, "large": 0} and split["negatives"] == 0


def test_pennfudan_layout_unreadable_image_and_wrong_size_mask(tmp_path: Path) -> None:
    root = generate_pennfudan(tmp_path / "p", num_images=10, height=48, width=48)  # data.num_test is 8
    (root / "PNGImages" / "SynthPed00002.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((40, 48), np.uint8), mode="L").save(root / "PedMasks" / "SynthPed00003_mask.png")
    status, report = _check(root, tmp_path / "out", layout="pennfudan")
    assert status == 1
    problems = {(Path(p["file"]).name, p["kind"]) for p in report["problems"]}
    assert problems == {("SynthPed00002.png", "unreadable_image"), ("SynthPed00003_mask.png", "size_mismatch")}
    assert report["splits"]["train"]["images"] + report["splits"]["eval"]["images"] == 10


def test_voc_layout_clean_dataset_counts_classes(tmp_path: Path) -> None:
    root = generate_voc(tmp_path / "v", num_images=6, height=48, width=64)
    status, report = _check(root, tmp_path / "out", layout="voc")
    assert status == 0 and report["problems"] == []
    ids = np.concatenate([np.unique(np.asarray(Image.open(p))) for p in (root / "SegmentationObject").glob("*.png")])
    instances = sum(report["splits"][s]["instances"] for s in ("train", "eval"))
    assert instances == int(((ids != 0) & (ids != 255)).sum())


def test_bad_override_is_a_one_line_error_with_status_2(tmp_path: Path, capsys) -> None:
    assert main(["data=imagenet", f"out={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "imagenet" in err and "Traceback" not in err
