"""LVIS: the reader (coco_url paths, LVIS field checks), the protocol against the official lvis-api run directly on
the same files, with hand-checked answers on a designed set (federated negatives, a not-exhaustive category, a
category neither verified present nor absent, the 300 cap, r/c/f groups), the wrapper's two fixes, repeat factors
hand-computed, and (slow) evaluate.py and a smoke training on the synthetic LVIS layout."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.data.lvis import LvisReader
from insseg.data.repeat_factor import RepeatFactorSampler, image_categories, repeat_factors
from insseg.data.synthetic_lvis import generate_lvis
from insseg.engine.trainer import run_training
from insseg.errors import DatasetError
from insseg.evaluation.lvis_evaluator import LvisEvaluator
from insseg.evaluation.lvis_protocol import numpy_float_alias, run_lvis_eval
from insseg.evaluation.pipeline import run_evaluation
from insseg.evaluation.sample import ImageSample
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

lvis = pytest.importorskip("lvis")

H = W = 64
CATEGORIES = [
    {"id": 1, "name": "apple", "frequency": "f"},
    {"id": 2, "name": "banana", "frequency": "c"},
    {"id": 3, "name": "cherry", "frequency": "r"},
    {"id": 4, "name": "durian", "frequency": "r"},  # never annotated: no AP (-1 in the API)
    {"id": 5, "name": "elder", "frequency": "c"},
]
# image id -> (folder, neg_category_ids, not_exhaustive_category_ids, [(category, box xywh)])
IMAGES = {
    11: ("val2017", [3], [], [(1, (4, 4, 20, 20)), (2, (30, 4, 20, 20)), (5, (4, 36, 20, 20))]),
    12: ("train2017", [2], [1], [(1, (4, 4, 20, 20)), (3, (30, 30, 20, 20))]),
    13: ("val2017", [1], [], [(2, (10, 10, 30, 30))]),
}
ELSEWHERE = (40, 40, 16, 16)
# (image id, category, box, score)
DETECTIONS = [
    (11, 1, (4, 4, 20, 20), 0.9),  # apple TP
    (12, 1, (40, 4, 16, 16), 0.95),  # apple unmatched where apple is not exhaustive: ignored, no FP
    (12, 1, (4, 4, 20, 20), 0.8),  # apple TP
    (13, 1, ELSEWHERE, 0.85),  # apple where apple is verified absent (neg_category_ids): FP
    (11, 2, (30, 4, 20, 20), 0.7),  # banana TP
    (12, 2, (4, 40, 16, 16), 0.75),  # banana verified absent: FP
    (13, 2, (10, 10, 30, 30), 0.5),  # banana TP, but the 302nd detection of image 13: cut by the 300 cap
    (11, 5, (4, 36, 20, 20), 0.3),  # elder TP
    (11, 3, ELSEWHERE, 0.95),  # cherry verified absent: FP
    (12, 3, (30, 30, 20, 20), 0.9),  # cherry TP
    (11, 4, (10, 40, 10, 10), 0.99),  # durian: neither present nor verified absent in image 11: ignored
] + [(13, 5, (k % 40, k // 40, 8, 8), 0.6) for k in range(300)]  # elder, unverified in 13: ignored

# By hand (101 recall points; every match has IoU 1, so all ten thresholds agree):
APPLE = (51 * 1 + 50 * 2 / 3) / 101  # ranks: ignored, TP, FP, TP -> precision 1 up to recall .5, then 2/3
BANANA = 51 * 0.5 / 101  # FP, TP, and the second object never detected (capped): precision .5 up to recall .5
CHERRY = 0.5  # FP, TP: precision .5 at every recall
ELDER = 1.0  # one TP; the 300 unverified detections of image 13 do not count
EXPECTED = {
    "AP": (APPLE + BANANA + CHERRY + ELDER) / 4,
    "APr": CHERRY,
    "APc": (BANANA + ELDER) / 2,
    "APf": APPLE,
}


def _polygon(box) -> list[list[float]]:
    x, y, w, h = box
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _rle(box) -> dict:
    rle = mask_utils.merge(mask_utils.frPyObjects(_polygon(box), H, W))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def write_designed_set(root: Path) -> Path:
    """The designed set in the LVIS layout: annotations/lvis_v1_val.json (no file_name, coco_url only) and the
    images in val2017/ and train2017/."""
    images, annotations = [], []
    for image_id, (folder, neg, not_exhaustive, objects) in IMAGES.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(root / folder / f"{image_id:012d}.jpg")
        images.append(
            {
                "id": image_id,
                "height": H,
                "width": W,
                "coco_url": f"http://images.cocodataset.org/{folder}/{image_id:012d}.jpg",
                "neg_category_ids": neg,
                "not_exhaustive_category_ids": not_exhaustive,
            }
        )
        for category, box in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": _polygon(box),
                    "area": float(box[2] * box[3]),
                    "bbox": list(map(float, box)),
                }
            )
    path = root / "annotations" / "lvis_v1_val.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return path


def official(gt_file: Path, results: list[dict], iou_type: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """lvis-api run directly on the files, as its README shows (np.float given back to numpy for the run)."""
    monkeypatch.setattr(np, "float", float, raising=False)
    res_file = gt_file.parent / f"results_{iou_type}.json"
    res_file.write_text(json.dumps(results))
    ev = lvis.LVISEval(str(gt_file), str(res_file), iou_type)
    ev.run()
    monkeypatch.delattr(np, "float")
    return {k: (None if v == -1 else float(v)) for k, v in ev.results.items()}


def results_list(iou_type: str) -> list[dict]:
    """The designed detections as a COCO results list (segm: no bbox, so the area is the mask's)."""
    out = []
    for image_id, category, box, score in DETECTIONS:
        entry = {"image_id": image_id, "category_id": category, "score": score}
        entry.update({"segmentation": _rle(box)} if iou_type == "segm" else {"bbox": list(map(float, box))})
        out.append(entry)
    return out


def predictions(reader: LvisReader) -> list[ImagePrediction]:
    """The same detections as the records evaluate.py hands to the evaluator (dataset labels, xyxy boxes)."""
    label = {c: k for k, c in enumerate(reader.category_ids, start=1)}
    records = []
    for i in range(len(reader)):
        dets = [d for d in DETECTIONS if d[0] == reader.image_id(i)]
        boxes = np.asarray([[x, y, x + w, y + h] for _, _, (x, y, w, h), _ in dets], np.float32).reshape(-1, 4)
        records.append(
            ImagePrediction(
                reader.file_name(i),
                H,
                W,
                boxes,
                np.asarray([d[3] for d in dets], np.float32),
                np.asarray([label[d[1]] for d in dets], np.int64),
                [_rle(d[2]) for d in dets],
            )
        )
    return records


@pytest.fixture
def designed(tmp_path: Path) -> tuple[Path, LvisReader]:
    gt_file = write_designed_set(tmp_path / "lvis")
    return gt_file, LvisReader(gt_file, tmp_path / "lvis")


def evaluate_designed(reader: LvisReader) -> tuple[LvisEvaluator, dict]:
    ev = LvisEvaluator(reader.categories)
    for i, rec in enumerate(predictions(reader)):
        ev.process(ImageSample(reader.annotation(i), rec))
    return ev, ev.evaluate()


def test_reader_finds_images_through_coco_url(designed) -> None:
    gt_file, reader = designed
    assert [reader.file_name(i) for i in range(3)] == [
        "val2017/000000000011.jpg",
        "train2017/000000000012.jpg",
        "val2017/000000000013.jpg",
    ]
    reader.verify()  # every image found at its stated size
    assert reader.frequencies == ("f", "c", "r", "r", "c")
    ann = reader.annotation(1)
    assert ann.image_entry["not_exhaustive_category_ids"] == [1] and ann.labels.tolist() == [1, 3]
    assert "file_name" not in json.loads(gt_file.read_text())["images"][0]  # the user's file is only read


def test_reader_names_missing_lvis_fields(tmp_path: Path) -> None:
    gt_file = write_designed_set(tmp_path / "lvis")
    data = json.loads(gt_file.read_text())
    del data["images"][1]["neg_category_ids"]
    del data["categories"][2]["frequency"]
    data["images"][2]["not_exhaustive_category_ids"] = [99]
    gt_file.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as err:
        LvisReader(gt_file, tmp_path / "lvis").verify()
    text = str(err.value)
    assert "image id 12: 'neg_category_ids'" in text and "category 3 ('cherry')" in text and "[99]" in text


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_designed_set_by_hand_and_as_lvis_api_directly(designed, iou_type: str, monkeypatch) -> None:
    gt_file, reader = designed
    ev, metrics = evaluate_designed(reader)
    for name, value in EXPECTED.items():
        assert metrics[f"{iou_type}_{name}"] == pytest.approx(value, abs=1e-12), name
    theirs = official(gt_file, results_list(iou_type), iou_type, monkeypatch)
    for name, value in theirs.items():
        ours = metrics[f"{iou_type}_{name.replace('@', '')}"]
        assert (value is None and math.isnan(ours)) or ours == pytest.approx(value, abs=1e-12), name
    per_class = metrics["per_class"]
    assert per_class["durian"] is None
    assert per_class["apple"][f"{iou_type}_AP"] == pytest.approx(APPLE, abs=1e-12)
    assert per_class["banana"]["frequency"] == "c" and per_class["banana"][f"{iou_type}_AP"] == pytest.approx(BANANA)
    assert per_class["cherry"][f"{iou_type}_AP50"] == pytest.approx(CHERRY)
    assert per_class["elder"]["num_gt"] == 1 and per_class["elder"]["num_predictions"] == 1 + 299  # 300 cap


def _class_ap(ev, category: int) -> float:
    p = ev.eval["precision"][:, :, ev.params.cat_ids.index(category), 0]
    return float(p[p > -1].mean())


def _changed(dataset: dict, image_id: int, key: str, ids: list[int]) -> dict:
    out = copy.deepcopy(dataset)
    next(im for im in out["images"] if im["id"] == image_id)[key] = ids
    return out


def test_each_federated_rule_moves_its_number(designed) -> None:
    """The designed numbers come from the rules, each checked by undoing it (by hand again)."""
    gt_file, _ = designed
    dataset, results = json.loads(gt_file.read_text()), results_list("segm")
    # the 300 cap: without it banana's second object is found (FP, TP, TP: precision 2/3 throughout)
    assert _class_ap(run_lvis_eval(dataset, results, "segm", max_dets=400), 2) == pytest.approx(2 / 3)
    assert _class_ap(run_lvis_eval(dataset, results, "segm"), 2) == pytest.approx(BANANA)
    # a verified-absent category's detection is a false positive: not verified, cherry's FP is ignored
    assert _class_ap(run_lvis_eval(_changed(dataset, 11, "neg_category_ids", []), results, "segm"), 3) == pytest.approx(
        1.0
    )
    # not exhaustive: otherwise apple's unmatched 0.95 in image 12 is an FP (FP, TP, FP, TP: 1/2 throughout)
    plain = _changed(dataset, 12, "not_exhaustive_category_ids", [])
    assert _class_ap(run_lvis_eval(plain, results, "segm"), 1) == pytest.approx(0.5)
    # unverified categories are ignored: with elder verified absent in image 13, its 299 kept detections there
    # are FPs ranked above the one TP
    absent = _changed(dataset, 13, "neg_category_ids", [1, 5])
    assert _class_ap(run_lvis_eval(absent, results, "segm"), 5) == pytest.approx(1 / 300)


def test_wrapper_leaves_inputs_unchanged_and_numpy_alone(designed) -> None:
    gt_file, _ = designed
    dataset = json.loads(gt_file.read_text())
    results = results_list("segm")
    before, results_before = copy.deepcopy(dataset), copy.deepcopy(results)
    ev = run_lvis_eval(dataset, results, "segm")
    assert dataset == before and results == results_before  # polygons still polygons, no ignore/area/id added
    assert ev.results["APf"] == pytest.approx(APPLE)
    assert "float" not in vars(np) and lvis.eval.np is np  # the alias lived only inside the run


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
def test_api_itself_rewrites_ground_truth_and_needs_np_float(designed) -> None:
    """The two faults the wrapper fixes, shown on the API as it is (the reason the wrapper exists)."""
    gt_file, _ = designed
    dataset = json.loads(gt_file.read_text())
    gt = lvis.LVIS.__new__(lvis.LVIS)
    gt.dataset, gt.logger = dataset, lvis.lvis.logging.getLogger("lvis")
    gt._create_index()
    ev = lvis.LVISEval(gt, results_list("segm"), "segm")
    ev.evaluate()
    assert isinstance(dataset["annotations"][0]["segmentation"], dict)  # the polygon became an RLE in place
    assert "ignore" in dataset["annotations"][0]
    if "float" not in vars(np):  # numpy >= 1.24
        with pytest.raises(AttributeError):
            ev.accumulate()
        with numpy_float_alias():
            ev.accumulate()
        assert ev.eval["precision"].shape[2] == len(CATEGORIES)


def test_no_detections_gives_undefined_not_a_crash(designed) -> None:
    _, reader = designed
    ev = LvisEvaluator(reader.categories)
    for i, rec in enumerate(predictions(reader)):
        ev.process(ImageSample(reader.annotation(i), rec.keep(np.zeros(len(rec), bool))))
    metrics = ev.evaluate()
    assert math.isnan(metrics["segm_AP"]) and metrics["per_class"]["apple"] is None


# ------------------------------------------------------------------------------------------ repeat factors
def test_repeat_factors_by_hand() -> None:
    # 10 images: A in nine (f = 0.9), B in one (f = 0.1), C in two (f = 0.2); t = 0.5
    cats = [{1, 2, 3}, {1, 3}] + [{1}] * 7 + [set()]  # the last image has no objects: factor 1
    factors = repeat_factors(cats, 0.5)
    r_b, r_c = math.sqrt(0.5 / 0.1), math.sqrt(0.5 / 0.2)  # 2.236, 1.581; A: max(1, sqrt(0.5)) = 1
    assert factors == pytest.approx([r_b, r_c] + [1.0] * 8)
    assert repeat_factors(cats, 0.001) == [1.0] * 10  # the LVIS threshold leaves common categories alone


def test_repeat_factor_sampler_draws_stochastic_rounding_seeded() -> None:
    factors = [2.25, 1.5, 1.0, 1.0]
    sampler = RepeatFactorSampler(factors, seed=3)
    first = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first  # seeded: the same epoch draws the same list
    counts = np.zeros(4)
    for epoch in range(2000):
        sampler.set_epoch(epoch)
        drawn = np.bincount(list(sampler), minlength=4)
        assert drawn[0] in (2, 3) and drawn[1] in (1, 2) and drawn[2] == drawn[3] == 1  # floor(r) or floor(r) + 1
        counts += drawn
    assert counts / 2000 == pytest.approx(factors, abs=0.05)  # expected draws = the factor
    # DDP: every rank draws the same list and takes its share (padded to a multiple of the ranks)
    shards = [list(RepeatFactorSampler(factors, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    padded = first + first[: (-len(first)) % 3]
    assert shards == [padded[r::3] for r in range(3)] and len({len(s) for s in shards}) == 1


def test_repeat_factors_from_the_lvis_reader(designed) -> None:
    _, reader = designed
    cats = image_categories(reader, [0, 1, 2])
    assert cats == [{1, 2, 5}, {1, 3}, {2}]
    # t = 1: f(apple) = f(banana) = 2/3, f(cherry) = f(elder) = 1/3 -> sqrt(3) for images with cherry or elder
    assert repeat_factors(cats, 1.0) == pytest.approx([math.sqrt(3), math.sqrt(3), math.sqrt(1.5)])


# ------------------------------------------------------------------------------------------ the pipeline
SMALL = [
    "experiment=smoke",
    "device=cpu",
    "device.num_threads=1",
    "model.min_size=64",
    "model.max_size=96",
    "data.max_train_images=null",
    "data.max_eval_images=null",
]


@pytest.fixture(scope="module")
def lvis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_lvis(tmp_path_factory.mktemp("lvis") / "lvis", num_images=12, height=64, width=80)


def _cfg(name: str, tmp: Path, root: Path, *overrides: str, out: str = "out"):
    base = ["data=lvis", f"data.root={root}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={tmp / 'cache'}"]
    return compose_config(name, [*SMALL, *base, *overrides], output_dir=tmp / out)


def _near_perfect(dataset) -> PredictionSet:
    """Every object found exactly (falling scores), plus a false positive of the first class per image."""
    images = []
    for i in range(len(dataset)):
        ann = dataset.annotation(i)
        fp = np.zeros((1, ann.height, ann.width), bool)
        fp[0, :6, :6] = True
        masks = np.concatenate([ann.masks(), fp])
        boxes = np.asarray([mask_utils.toBbox(r) for r in encode_masks(masks)], np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        scores = np.linspace(0.9, 0.4, len(masks)).astype(np.float32)
        labels = np.asarray(list(ann.labels) + [1], np.int64)
        images.append(
            ImagePrediction(dataset.file_name(i), ann.height, ann.width, boxes, scores, labels, encode_masks(masks))
        )
    return PredictionSet(list(dataset.class_names), images, info={"score_threshold": None})


def test_evaluate_predictions_file_on_lvis_equals_lvis_api(tmp_path: Path, lvis_root: Path, monkeypatch) -> None:
    gt_file = lvis_root / "annotations" / "lvis_v1_val.json"
    dataset = build_dataset(_cfg("evaluate", tmp_path, lvis_root).data, "eval")
    assert any(name.startswith("train2017/") for name in map(dataset.file_name, range(len(dataset))))
    _near_perfect(dataset).write(tmp_path / "theirs.json")
    metrics = run_evaluation(_cfg("evaluate", tmp_path, lvis_root, f"eval.predictions={tmp_path / 'theirs.json'}"))
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())["annotations"]  # the file's ids
    for iou_type in ("segm", "bbox"):
        drop = "bbox" if iou_type == "segm" else "segmentation"
        theirs = official(gt_file, [{k: v for k, v in a.items() if k != drop} for a in written], iou_type, monkeypatch)
        for name, value in theirs.items():
            ours = metrics[f"{iou_type}_{name.replace('@', '')}"]
            assert (value is None and ours is None) or ours == pytest.approx(value, abs=1e-12), (iou_type, name)
    assert 0.5 < metrics["segm_AP"] < 1.0 and metrics["mean_iou"] == pytest.approx(1.0)  # FPs cost AP, not IoU
    assert "segm_AR100" not in metrics and "segm_APr" in metrics  # LVIS replaced COCO AP
    assert metrics["per_class"]["ellipse"]["frequency"] == "f"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Frequent: " in html and "Common: " in html and "Rare: " in html
    assert (tmp_path / "out" / "metrics.xlsx").is_file() and (tmp_path / "out" / "masks").is_dir()


def test_training_samples_by_repeat_factor(tmp_path: Path, lvis_root: Path) -> None:
    from insseg.engine.train_epoch import build_train_loader
    from insseg.utils.distributed import DistInfo

    cfg = _cfg("train", tmp_path, lvis_root, "data.repeat_factor_threshold=0.5")
    train_set = build_dataset(cfg.data, "train")
    loader, _ = build_train_loader(cfg, train_set, torch.device("cpu"), DistInfo())
    assert isinstance(loader.sampler, RepeatFactorSampler)
    expected = repeat_factors(image_categories(train_set.reader, train_set.indices), 0.5)
    assert loader.sampler.factors.tolist() == pytest.approx(expected) and max(expected) > 1  # "tag" is rare
    assert compose_config("train", ["data=lvis"]).data.repeat_factor_threshold == 0.001
    assert compose_config("train", ["data=lvis"]).model.detections_per_img == 300  # Mask R-CNN keeps 300 on LVIS
    assert compose_config("train", ["data=coco"]).model.detections_per_img == 100


@pytest.mark.slow
def test_smoke_training_on_synthetic_lvis_layout(tmp_path: Path) -> None:
    overrides = [
        "data=synthetic_lvis",
        f"paths.data_dir={tmp_path / 'data'}",
        "data.synthetic.num_images=10",
        "data.synthetic.height=64",
        "data.synthetic.width=80",
        "data.repeat_factor_threshold=0.5",
        "model.detections_per_img=20",
        "eval.reports.gallery=0",
    ]
    cfg = compose_config("train", [*SMALL, f"paths.log_dir={tmp_path / 'logs'}", *overrides], output_dir=tmp_path / "t")
    metrics = run_training(cfg)
    assert (tmp_path / "data" / "synthetic_lvis" / "annotations" / "lvis_v1_train.json").is_file()
    assert (tmp_path / "t" / "checkpoints" / "best.pt").is_file() and "segm_APr" in metrics  # scored as LVIS


def test_repeat_factor_threshold_needs_coco_format_data() -> None:
    from insseg.config.validate import validate_config
    from insseg.errors import ConfigError

    validate_config(compose_config("train", ["data=lvis"]))
    with pytest.raises(ConfigError, match="data.repeat_factor_threshold"):
        validate_config(compose_config("train", ["data=pennfudan", "data.repeat_factor_threshold=0.001"]))
    with pytest.raises(ConfigError, match="data.repeat_factor_threshold"):
        validate_config(compose_config("train", ["data=lvis", "data.repeat_factor_threshold=0"]))


def test_check_and_export_coco_on_lvis(tmp_path: Path, lvis_root: Path, capsys) -> None:
    from insseg.data.check import main as check_main
    from insseg.data.export_coco import export_coco

    assert check_main(["data=lvis", f"data.root={lvis_root}", f"out={tmp_path / 'check'}"]) == 0
    report = json.loads((tmp_path / "check" / "dataset_report.json").read_text())
    assert report["layout"] == "lvis" and report["splits"]["eval"]["images"] == 4 and report["errors"] == 0
    cfg = _cfg("train", tmp_path, lvis_root)
    written = export_coco(cfg.data, tmp_path / "export")
    original = json.loads((lvis_root / "annotations" / "lvis_v1_val.json").read_text())
    exported = json.loads(written["eval"].read_text())
    assert [c["frequency"] for c in exported["categories"]] == [c["frequency"] for c in original["categories"]]
    for a, b in zip(original["images"], exported["images"]):
        assert a["neg_category_ids"] == b["neg_category_ids"] and b["file_name"].endswith(f"{a['id']:012d}.jpg")
    again = LvisReader(written["eval"], tmp_path / "export" / "val2017")
    again.verify()
    source = LvisReader(lvis_root / "annotations" / "lvis_v1_val.json", lvis_root)
    assert [again.annotation(i).areas().tolist() for i in range(4)] == [
        source.annotation(i).areas().tolist() for i in range(4)
    ]


def test_confusion_matrix_of_lvis_size_is_counted_not_drawn(tmp_path: Path) -> None:
    from insseg.evaluation.reports.confusion import FILE_NAME, MAX_DRAWN_CLASSES, ConfusionEvaluator

    many = ConfusionEvaluator([f"c{k}" for k in range(MAX_DRAWN_CLASSES + 1)], tmp_path / "many")
    assert many.evaluate() == {} and not (tmp_path / "many" / FILE_NAME).exists()
    assert len(many.matrix.sheet_rows()) > 2 * MAX_DRAWN_CLASSES  # the counts still go to metrics.xlsx


@pytest.mark.slow
def test_predict_then_evaluate_its_file_on_lvis(tmp_path: Path, lvis_root: Path, monkeypatch) -> None:
    """predict.py over the COCO image folders names images as LVIS finds them (val2017/..., train2017/...), so
    evaluate.py eval.predictions= scores its file: the same numbers as the model run and as lvis-api by hand."""
    from insseg.inference.predict_pipeline import run_prediction

    small = ["model.detections_per_img=20", "model.box_score_thresh=0.0", "eval.reports.gallery=0"]
    trained = run_training(_cfg("train", tmp_path, lvis_root, *small, out="train"))
    weights = f"model.weights={tmp_path / 'train' / 'checkpoints' / 'best.pt'}"
    direct = run_evaluation(_cfg("evaluate", tmp_path, lvis_root, weights, "eval.cache=false", *small, out="eval"))
    assert direct["segm_AP"] == pytest.approx(trained["segm_AP"], abs=1e-12)
    glob = f"input={lvis_root}/*2017/*.jpg"
    run_prediction(_cfg("predict", tmp_path, lvis_root, weights, glob, "predict.score_threshold=0", *small, out="p"))
    again = run_evaluation(
        _cfg(
            "evaluate",
            tmp_path,
            lvis_root,
            weights,
            f"eval.predictions={tmp_path / 'p' / 'predictions.json'}",
            out="e2",
        )
    )
    keys = [k for k in direct if k.startswith(("segm_AP", "bbox_AP"))]
    assert {k: again[k] for k in keys} == {k: direct[k] for k in keys}
    anns = json.loads((tmp_path / "e2" / "predictions.json").read_text())["annotations"]
    gt_file = lvis_root / "annotations" / "lvis_v1_val.json"
    theirs = official(gt_file, [{k: v for k, v in a.items() if k != "bbox"} for a in anns], "segm", monkeypatch)
    assert again["segm_AP"] == (None if theirs["AP"] is None else pytest.approx(theirs["AP"], abs=1e-12))


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_faster_coco_eval_lvis_style_agrees_on_designed_set_once_capped(designed, iou_type: str) -> None:
    """What docs/evaluation.md says of faster-coco-eval's LVIS mode: given the detections already cut to the best
    300 of each image (its maxDets cuts per image and category), it gives lvis-api's numbers on the designed set."""
    faster = pytest.importorskip("faster_coco_eval")
    gt_file, reader = designed
    ev, metrics = evaluate_designed(reader)
    gt = faster.COCO(str(gt_file))
    fe = faster.COCOeval_faster(
        gt, gt.loadRes(ev.results(iou_type)), iou_type, lvis_style=True, print_function=lambda *a: None
    )
    fe.params.maxDets = [300]
    fe.evaluate()
    fe.accumulate()
    fe.summarize()
    theirs = fe.stats_as_dict
    for ours, key in (("AP", "AP_all"), ("AP50", "AP_50"), ("APs", "AP_small"), ("APr", "APr"), ("APc", "APc")):
        assert theirs[key] == pytest.approx(metrics[f"{iou_type}_{ours}"], abs=1e-12), key
    uncapped = gt.loadRes(results_list(iou_type))
    fe = faster.COCOeval_faster(gt, uncapped, iou_type, lvis_style=True, print_function=lambda *a: None)
    fe.params.maxDets = [300]
    fe.evaluate()
    fe.accumulate()
    fe.summarize()
    assert fe.stats_as_dict["APc"] != pytest.approx(EXPECTED["APc"])  # uncut, banana's capped object is found
