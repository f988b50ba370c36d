"""COCO-format data: every form real files hold, the index, bad input named before any long work."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from coco_fixtures import H, W, every_form_dataset, polygon_of, rect_mask, write_image, write_json

from insseg.config import compose_config
from insseg.data import build_dataset, build_reader
from insseg.data.coco import CocoReader
from insseg.data.dataset import InstanceSegmentationDataset
from insseg.errors import DatasetError


@pytest.fixture(scope="module")
def forms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("forms")
    every_form_dataset(root)
    return root


def _reader(root: Path) -> CocoReader:
    return CocoReader(root / "annotations" / "instances_val2017.json", root / "val2017")


def test_every_form_decodes_to_the_pixels_drawn(forms_root: Path) -> None:
    reader = _reader(forms_root)
    # categories sorted by id: 5 person -> label 1, 12 dog -> label 2
    assert reader.class_names == ("person", "dog") and reader.category_ids == (5, 12)
    assert [reader.file_name(i) for i in range(4)] == ["a.png", "sub/dir/b.png", "neg.png", "photo.jpg"]
    assert [reader.image_id(i) for i in range(4)] == [42, 7, 1000, 3]

    a = reader.annotation(0)
    masks = a.masks()
    assert a.labels.tolist() == [1, 2, 1] and a.annotation_ids == [901, 17, 18]
    assert (masks[0] == rect_mask(2, 2, 12, 10)).all()
    assert (masks[1] == (rect_mask(20, 5, 25, 15) | rect_mask(30, 5, 35, 15))).all()  # two polygon parts
    assert (masks[2] == rect_mask(8, 6, 16, 14)).all()  # compressed RLE, overlapping instance 0
    assert (masks[0] & masks[2]).sum() == 4 * 4  # overlap kept: instances are not an id map

    b = reader.annotation(1)  # uncompressed RLE instance; crowd region apart; 2-point polygon skipped
    assert b.labels.tolist() == [2] and b.annotation_ids == [5]
    assert (b.masks()[0] == rect_mask(0, 0, 10, 10)).all()
    assert (b.ignore() == rect_mask(30, 20, 50, 35)).all()
    assert b.background().sum() == H * W - 100 - 300
    assert [e["id"] for e in b.coco_entries] == [5, 6, 8]  # COCO AP sees the file's entries, crowd included
    degenerate = b.coco_entries[2]
    assert degenerate["area"] == 0.0 and degenerate["bbox"] == [0.0, 0.0, 0.0, 0.0]

    neg = reader.annotation(2)
    assert len(neg) == 0 and neg.masks().shape == (0, H, W) and neg.coco_entries == []


def test_exif_photo_is_upright_and_fits_its_annotation(forms_root: Path) -> None:
    reader = _reader(forms_root)
    image = reader.load_image(3)
    assert image.shape == (H, W, 3)  # stored 60 tall x 40 wide, orientation 6
    ann = reader.annotation(3, image_hw=image.shape[:2])
    assert (ann.masks()[0] == rect_mask(10, 10, 20, 30)).all()


def test_training_targets_use_non_crowd_instances_with_pixel_extent_boxes(forms_root: Path) -> None:
    dataset = InstanceSegmentationDataset(_reader(forms_root))
    _, target = dataset[1]
    assert target["labels"].tolist() == [2]  # the crowd region and the degenerate polygon are not instances
    assert target["boxes"].tolist() == [[0.0, 0.0, 10.0, 10.0]]
    assert target["iscrowd"].tolist() == [0]
    _, target = dataset[0]
    assert target["boxes"].tolist() == [[2.0, 2.0, 12.0, 10.0], [20.0, 5.0, 35.0, 15.0], [8.0, 6.0, 16.0, 14.0]]
    assert dataset.image_id(1) == 7


def test_degenerate_polygon_is_a_counted_warning_not_an_error(forms_root: Path, caplog) -> None:
    reader = _reader(forms_root)
    with caplog.at_level(logging.WARNING, logger="insseg"):
        reader.verify()
    text = " ".join(r.getMessage() for r in caplog.records)
    assert (
        "3 warning(s) (1 few_points, 1 missing_area, 1 missing_bbox)" in text and "annotation id 8: 1 polygon" in text
    )


def test_index_of_a_large_file_groups_annotations_per_image(tmp_path: Path) -> None:
    images = [{"id": 10 * i + 1, "file_name": f"{i}.jpg", "height": 50, "width": 50} for i in range(500)]
    anns = [
        {
            "id": k,
            "image_id": 10 * (k % 500) + 1,
            "category_id": 9,
            "iscrowd": 0,
            "area": 25.0,
            "bbox": [0, 0, 5, 5],
            "segmentation": [polygon_of(0, 0, 5, 5)],
        }
        for k in range(5000)
    ]
    path = write_json(
        tmp_path / "big.json", {"images": images, "annotations": anns, "categories": [{"id": 9, "name": "x"}]}
    )
    reader = CocoReader(path, tmp_path)
    assert len(reader) == 500 and reader.index.num_annotations == 5000
    assert [a["id"] for a in reader.index.anns[3]] == list(range(3, 5000, 500))
    assert reader.index.problems == []


# --- bad input: one clear paragraph naming the file (and annotation id) ---


def _minimal(tmp_path: Path, **changes) -> Path:
    write_image(tmp_path / "img" / "x.png")
    data = {
        "images": [{"id": 1, "file_name": "x.png", "height": H, "width": W}],
        "annotations": [
            {
                "id": 77,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": 80.0,
                "bbox": [2, 2, 10, 8],
                "segmentation": [polygon_of(2, 2, 12, 10)],
            }
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    for key, value in changes.items():
        if key == "ann":
            data["annotations"][0].update(value)
        elif value is None:
            del data[key]
        else:
            data[key] = value
    return write_json(tmp_path / "ann.json", data)


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"images": [],\n  "annotations": [\n    {"id": 1,,}\n]}')
    with pytest.raises(DatasetError, match=r"bad\.json is not valid JSON: .* at line 3, column 14"):
        CocoReader(path, tmp_path)


def test_missing_top_level_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"ann\.json has no top-level 'categories' key"):
        CocoReader(_minimal(tmp_path, categories=None), tmp_path / "img")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"category_id": "1"}, r"annotation id 77: 'category_id' must be an integer \(got '1'\)"),
        ({"bbox": "2,2,10,8"}, r"annotation id 77: 'bbox' must be a list of 4 numbers"),
        ({"segmentation": [2, 2, 12, 2, 12, 10]}, r"annotation id 77: unknown segmentation form: a polygon"),
        ({"segmentation": {"counts": "abc"}}, r"annotation id 77: unknown segmentation form"),
        ({"image_id": 5}, r"annotation id 77: image_id 5 is not in 'images'"),
        ({"category_id": 2}, r"annotation id 77: category_id 2 is not in 'categories'"),
    ],
)
def test_bad_annotation_is_named_with_its_id(tmp_path: Path, change: dict, message: str) -> None:
    reader = CocoReader(_minimal(tmp_path, ann=change), tmp_path / "img")
    with pytest.raises(DatasetError, match=r"ann\.json, " + message):
        reader.verify()


def test_image_listed_but_absent_is_named(tmp_path: Path) -> None:
    path = _minimal(tmp_path)
    (tmp_path / "img" / "x.png").unlink()
    with pytest.raises(DatasetError, match=r"img/x\.png: image id 1 listed in .*ann\.json: the file does not exist"):
        CocoReader(path, tmp_path / "img").verify()


def test_image_size_differing_from_the_json_is_named(tmp_path: Path) -> None:
    path = _minimal(tmp_path, images=[{"id": 1, "file_name": "x.png", "height": H + 1, "width": W}])
    with pytest.raises(DatasetError, match=r"x\.png is 60x40 but .*ann\.json gives image id 1 width 60 and height 41"):
        CocoReader(path, tmp_path / "img").verify()


def _coco_overrides(root: Path, tmp_path: Path) -> list[str]:
    return ["experiment=smoke", "device=cpu", "data=coco", f"data.root={root}", f"paths.log_dir={tmp_path / 'out'}"]


def test_train_json_pointing_at_nothing_names_the_key(tmp_path: Path, forms_root: Path) -> None:
    cfg = compose_config("train", [*_coco_overrides(forms_root, tmp_path), "data.train_json=nope/train.json"])
    with pytest.raises(DatasetError, match=r"data\.train_json: annotation file .*nope/train\.json does not exist"):
        build_reader(cfg.data, "train")


def test_data_coco_builds_both_splits_from_config(tmp_path: Path, forms_root: Path) -> None:
    overrides = _coco_overrides(forms_root, tmp_path)
    overrides += [
        f"data.train_json={forms_root / 'annotations' / 'instances_val2017.json'}",
        "data.train_images=val2017",
    ]
    cfg = compose_config("train", overrides)
    train = build_dataset(cfg.data, "train", hflip_prob=0.5)
    evaluation = build_dataset(cfg.data, "eval")
    assert len(train) == len(evaluation) == 4 and train.class_names == ("person", "dog")


def test_synthetic_coco_layout_is_generated_and_read(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        [
            "experiment=smoke",
            "device=cpu",
            "data=synthetic",
            "data.layout=coco",
            f"paths.data_dir={tmp_path}",
            "data.synthetic.num_images=12",
            "data.max_train_images=null",
            "data.max_eval_images=null",
        ],
    )
    train, evaluation = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "eval")
    assert (tmp_path / "synthetic_coco" / "annotations" / "instances_train2017.json").is_file()
    assert len(train) + len(evaluation) == 12 and train.class_names == ("ellipse", "rectangle")
    data = json.loads((tmp_path / "synthetic_coco" / "annotations" / "instances_train2017.json").read_text())
    forms = {
        f"polygon{len(a['segmentation'])}"
        if isinstance(a["segmentation"], list)
        else ("rle_list" if isinstance(a["segmentation"]["counts"], list) else "rle_str")
        for a in data["annotations"]
    }
    assert forms == {"polygon1", "polygon2", "rle_list", "rle_str"}
    assert any(a["iscrowd"] for a in data["annotations"])
    assert any("/" in im["file_name"] for im in data["images"])
    for i in range(len(train)):  # every image (EXIF one included) fits its annotation; masks match area
        image, target = train[i]
        ann = train.annotation(i)
        assert tuple(image.shape[1:]) == (ann.height, ann.width)
        assert np.array_equal(target["area"].numpy(), ann.areas().astype(np.float32))


def test_benchmark_file_is_clean_and_indexed_as_pycocotools_does(tmp_path: Path) -> None:
    import contextlib
    import io

    from pycocotools.coco import COCO

    from benchmarks.coco_data import big_annotation_file

    path = big_annotation_file(tmp_path / "big.json", num_images=40, per_image=10)
    reader = CocoReader(path, tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert reader.index.problems == [] and len(reader) == 40 and reader.category_ids == (1, 3, 8)
    for i in range(len(reader)):
        ours = [a["id"] for a in reader.index.anns[i]]
        assert ours == coco.getAnnIds(imgIds=[reader.image_id(i)]) and len(ours) in (10, 11)


def test_train_py_runs_the_fast_check_before_training(tmp_path: Path) -> None:
    from insseg.engine.trainer import run_training

    every_form_dataset(tmp_path / "d")
    (tmp_path / "d" / "val2017" / "sub" / "dir" / "b.png").unlink()
    overrides = _coco_overrides(tmp_path / "d", tmp_path) + [
        "model.weights=null",
        "data.train_images=val2017",
        "data.train_json=annotations/instances_val2017.json",
    ]
    cfg = compose_config("train", overrides, output_dir=tmp_path / "run")
    with pytest.raises(DatasetError, match=r"sub/dir/b\.png: image id 7 listed in .*: the file does not exist"):
        run_training(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
