"""run_evaluation(cfg) end to end on generated data: a model run, saved predictions files, the cache and a real
sweep."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from openpyxl import load_workbook
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.ops import masks_to_boxes

from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.errors import InssegError
from insseg.evaluation.excel_report import BOUNDARY_COLUMNS, OBJECT_COLUMNS
from insseg.evaluation.pipeline import HEADLINE, run_evaluation
from insseg.evaluation.prediction_cache import weights_identity
from insseg.evaluation.sample import ImageSample
from insseg.evaluation.timing import TimingEvaluator
from insseg.models.maskrcnn import COCO_CATEGORIES
from insseg.predictions import ImagePrediction, ImageTiming, PredictionSet, encode_masks

REPO = Path(__file__).resolve().parents[1]
# A small, fast model: random weights, tiny input size, few detections (the mask head dominates CPU time),
# one thread (on a busy 2-core machine two threads are several times slower).
FAST = [
    "experiment=smoke",
    "model.weights=null",
    "device=cpu",
    "device.num_threads=1",
    "model.min_size=96",
    "model.max_size=128",
    "model.detections_per_img=5",
    "data.synthetic.num_images=10",
    "data.num_test=4",
    "data.synthetic.height=64",
    "data.synthetic.width=80",
]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def config(tmp: Path, *overrides: str, out: str = "out"):
    base = [f"paths.data_dir={tmp / 'data'}", f"paths.cache_dir={tmp / 'cache'}", f"paths.log_dir={tmp / 'logs'}"]
    return compose_config("evaluate", [*FAST, *base, *overrides], output_dir=tmp / out)


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """One model run (no cache; batches of 3 over 4 images) shared by the tests that read its outputs."""
    tmp = tmp_path_factory.mktemp("evaluate")
    cfg = config(tmp, "eval.cache=false", "eval.score_threshold=0.05", "eval.warmup_iters=1", "eval.batch_size=3")
    return tmp, cfg, run_evaluation(cfg)


def test_model_run_writes_every_artefact(model_run):
    tmp, cfg, metrics = model_run
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert list(saved)[: len(HEADLINE)] == list(HEADLINE)
    assert saved["num_images"] == 4 and saved["prediction_cache_hit"] is False
    # COCO AP equals pycocotools run by hand on the written predictions.json and the masks' ground truth.
    for iou_type in ("segm", "bbox"):
        assert saved[f"{iou_type}_AP"] == pytest.approx(
            coco_by_hand(cfg, out / "predictions.json", iou_type), abs=1e-12
        )
    assert saved["time_model_ms_per_image"] > 0 and saved["time_total_ms_per_image"] >= saved["time_model_ms_per_image"]

    preds = json.loads((out / "predictions.json").read_text())
    assert set(preds) == {"info", "images", "annotations", "categories"}
    assert preds["info"]["precision"] == "float32" and saved["precision"] == "float32"
    assert [c["name"] for c in preds["categories"]] == ["person"]
    assert len(preds["images"]) == 4
    assert all(re.fullmatch(r"SynthPed\d{5}\.png", im["file_name"]) for im in preds["images"])
    ann = preds["annotations"][0]
    assert set(ann) == {"id", "image_id", "category_id", "score", "bbox", "segmentation"}
    assert isinstance(ann["segmentation"]["counts"], str) and len(ann["bbox"]) == 4
    # Every detection of the model's floor (0.05), not only those above the evaluation threshold.
    assert min(a["score"] for a in preds["annotations"]) >= cfg.model.box_score_thresh
    assert saved["num_predictions"] == sum(a["score"] > 0.05 for a in preds["annotations"])

    wb = load_workbook(out / "metrics.xlsx")
    assert wb.sheetnames == ["objects", "images", "summary", "config", "per_class", "confusion"]
    rows = list(wb["objects"].iter_rows(values_only=True))
    # the harness's twelve columns, then the boundary scores (eval.boundary is on by default)
    assert list(rows[0]) == [*OBJECT_COLUMNS, *BOUNDARY_COLUMNS] and len(rows) == 1 + saved["num_objects"]
    # Timing per object: the first batch (3 images, eval.warmup_iters=1) is warm-up and left untimed.
    assert saved["timed_images"] == 1
    last = Path(preds["images"][-1]["file_name"]).stem
    assert all((r[7] is not None and r[7] > 0) == (r[0] == last) for r in rows[1:])
    assert all(r[2] == k for k, r in enumerate(r for r in rows[1:] if r[0] == rows[1][0]))  # object index from 0

    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert sum(n.endswith("_predict.png") for n in masks) == 4
    pattern = re.compile(r"^SynthPed\d{5}_object\d+_iou\d\.\d{4}_f1score\d\.\d{4}\.png$")
    assert all(pattern.match(n) for n in masks if not n.endswith("_predict.png"))


def coco_by_hand(cfg, predictions_file: Path, iou_type: str) -> float:
    """COCOeval's AP from pycocotools alone: ground truth from the dataset's masks (RLE, toBbox, area)."""
    dataset = build_dataset(cfg.data, "eval")
    preds = json.loads(predictions_file.read_text())
    images, anns = [], []
    for im in preds["images"]:
        i = [dataset.file_name(k) for k in range(len(dataset))].index(im["file_name"])
        images.append(dict(im))
        for mask, label in zip(dataset.annotation(i).masks(), dataset.annotation(i).labels):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": im["id"],
                    "category_id": int(label),
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": mask_utils.toBbox(rle).tolist(),
                    "iscrowd": 0,
                }
            )
    gt = COCO()
    gt.dataset = {"images": images, "annotations": anns, "categories": preds["categories"]}
    gt.createIndex()
    ev = COCOeval(gt, gt.loadRes(preds["annotations"]), iouType=iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[0])


def test_saved_predictions_file_reproduces_the_run(model_run):
    tmp, cfg, metrics = model_run
    pred_file = Path(cfg.paths.output_dir) / "predictions.json"
    again = run_evaluation(
        config(tmp, f"eval.predictions={pred_file}", "eval.score_threshold=0.05", "eval.save_masks=false", out="again")
    )
    for key in HEADLINE:
        assert again[key] == metrics[key], key
    assert not (tmp / "again" / "masks").exists()
    assert json.loads((tmp / "again" / "predictions.json").read_text()) == json.loads(pred_file.read_text())


def record(name: str, masks: np.ndarray, labels, scores=None, class_names=()) -> ImagePrediction:
    """A record of ``masks`` with their pixel-extent boxes (pycocotools' convention) and score 1."""
    h, w = masks.shape[1:]
    boxes = (
        masks_to_boxes(torch.from_numpy(masks)).numpy() + [0, 0, 1, 1] if len(masks) else np.zeros((0, 4), np.float32)
    )
    scores = np.ones(len(masks), np.float32) if scores is None else np.asarray(scores, np.float32)
    return ImagePrediction(
        name,
        h,
        w,
        boxes.astype(np.float32),
        scores,
        np.asarray(labels, np.int64).reshape(-1),
        encode_masks(masks),
        class_names=class_names,
    )


def ground_truth_predictions(
    cfg, class_names: list[str] | None = None, name_of=None, split: str = "eval"
) -> PredictionSet:
    """A predictions file holding the ground truth itself (masks, pixel-extent boxes, score 1)."""
    dataset = build_dataset(cfg.data, split)
    names = list(class_names or dataset.class_names)
    predictions = PredictionSet(names)
    for i in range(len(dataset)):
        ann = dataset.annotation(i)
        labels = ann.labels if name_of is None else np.array([name_of(dataset.class_names[k - 1]) for k in ann.labels])
        predictions.images.append(record(dataset.file_name(i), ann.masks(), labels, class_names=names))
    return predictions


@pytest.mark.parametrize("layout", ["pennfudan", "voc"])
def test_perfect_predictions_score_one(tmp_path, layout):
    cfg = config(tmp_path, f"data.layout={layout}")
    path = tmp_path / "perfect.json"
    ground_truth_predictions(cfg).write(path)
    m = run_evaluation(config(tmp_path, f"data.layout={layout}", f"eval.predictions={path}"))
    for key in (
        "segm_AP",
        "segm_AP50",
        "bbox_AP",
        "mean_iou",
        "mean_f1",
        "mean_iou_with_bg",
        "mean_f1_with_bg",
        "instance_precision",
        "instance_recall",
        "instance_f1",
    ):
        assert m[key] == 1.0, key
    assert m["num_objects"] > 0 and m["num_predictions"] == m["num_objects"]
    images = list(load_workbook(tmp_path / "out" / "metrics.xlsx")["images"].iter_rows(values_only=True))
    if layout == "voc":  # the generated val split holds an image without objects
        assert any(r[3] == 0 for r in images[1:])
    # The exported mask of each object is its ground truth, 0/255.
    out = tmp_path / "out" / "masks"
    one = next(p for p in sorted(out.iterdir()) if "_object0_" in p.name)
    assert "_iou1.0000_f1score1.0000" in one.name
    assert set(np.unique(np.asarray(Image.open(one)))) <= {0, 255}


def test_coco_named_model_is_bridged_to_voc(tmp_path):
    cfg = config(tmp_path, "data.layout=voc")
    coco_names = COCO_CATEGORIES[1:]
    voc_to_coco = {
        "aeroplane": "airplane",
        "motorbike": "motorcycle",
        "sofa": "couch",
        "diningtable": "dining table",
        "pottedplant": "potted plant",
        "tvmonitor": "tv",
    }
    predictions = ground_truth_predictions(cfg, coco_names, lambda n: coco_names.index(voc_to_coco.get(n, n)) + 1)
    # A confident giraffe covering every image: VOC has no giraffe.
    giraffe = coco_names.index("giraffe") + 1
    for k, rec in enumerate(predictions.images):
        full = record(rec.file_name, np.ones((1, rec.height, rec.width), bool), [giraffe], [0.99], coco_names)
        predictions.images[k] = ImagePrediction(
            rec.file_name,
            rec.height,
            rec.width,
            np.concatenate([full.boxes, rec.boxes]),
            np.concatenate([full.scores, rec.scores]),
            np.concatenate([full.labels, rec.labels]),
            full.rles + rec.rles,
            class_names=coco_names,
        )
    path = tmp_path / "coco.json"
    predictions.write(path)
    dropped = run_evaluation(config(tmp_path, "data.layout=voc", f"eval.predictions={path}", "eval.save_masks=false"))
    assert dropped["segm_AP"] == 1.0 and dropped["mean_iou"] == 1.0 and dropped["instance_precision"] == 1.0
    kept = run_evaluation(
        config(
            tmp_path, "data.layout=voc", f"eval.predictions={path}", "eval.save_masks=false", "eval.keep_unmapped=true"
        )
    )
    assert kept["segm_AP"] == 1.0  # COCO AP is class-aware: an unmapped class meets no ground truth
    assert kept["num_predictions"] == dropped["num_predictions"] + dropped["num_images"]
    assert kept["instance_precision"] < 1.0


def test_eval_split_selects_other_images(tmp_path):
    cfg = config(tmp_path)
    path = tmp_path / "train.json"
    ground_truth_predictions(cfg, split="train").write(path)
    m = run_evaluation(config(tmp_path, f"eval.predictions={path}", "eval.split=train", "eval.save_masks=false"))
    assert m["num_images"] == 6 and m["segm_AP"] == 1.0
    # The held-out images are not in a file of training images.
    with pytest.raises(InssegError, match=r"no entry for 4 of the 4 images.*SynthPed"):
        run_evaluation(config(tmp_path, f"eval.predictions={path}", "eval.save_masks=false"))
    with pytest.raises(InssegError, match="eval.split"):
        run_evaluation(config(tmp_path, "eval.split=validation"))


def test_extra_images_in_the_file_are_ignored_with_a_warning(tmp_path, caplog):
    """predict.py over a whole folder, then evaluate.py on one split of it."""
    cfg = config(tmp_path)
    predictions = ground_truth_predictions(cfg)
    predictions.images += ground_truth_predictions(cfg, split="train").images
    path = tmp_path / "all.json"
    predictions.write(path)
    m = run_evaluation(config(tmp_path, f"eval.predictions={path}", "eval.save_masks=false"))
    assert m["num_images"] == 4 and m["segm_AP"] == 1.0
    assert re.search(r"ignoring 6 image\(s\) that the evaluation split does not hold: SynthPed", caplog.text)


def test_a_file_cut_above_the_floor_warns_and_records_its_lowest_score(tmp_path, caplog):
    cfg = config(tmp_path)
    predictions = ground_truth_predictions(cfg)
    predictions.info["score_threshold"] = 0.5
    for rec in predictions.images:
        rec.scores[:] = np.linspace(0.9, 0.6, len(rec), dtype=np.float32)
    path = tmp_path / "cut.json"
    predictions.write(path)
    m = run_evaluation(config(tmp_path, f"eval.predictions={path}", "eval.save_masks=false"))
    assert "biased low" in caplog.text
    assert m["lowest_score"] == pytest.approx(0.6) and m["predictions_score_threshold"] == 0.5
    caplog.clear()
    predictions.info["score_threshold"] = 0.0
    predictions.write(path)
    run_evaluation(config(tmp_path, f"eval.predictions={path}", "eval.save_masks=false"))
    assert "biased low" not in caplog.text


def test_cache_hit_gives_identical_metrics(tmp_path):
    first = run_evaluation(config(tmp_path, "eval.warmup_iters=0", "eval.save_masks=false", out="first"))
    second = run_evaluation(config(tmp_path, "eval.warmup_iters=0", "eval.save_masks=false", out="second"))
    assert first["prediction_cache_hit"] is False and second["prediction_cache_hit"] is True
    # Everything but where the predictions came from: a cache hit ran no model (model_run_s null).
    differ = ("prediction_cache_hit", "model_run_s")
    assert {k: v for k, v in first.items() if k not in differ} == {k: v for k, v in second.items() if k not in differ}
    assert first["model_run_s"] > 0 and second["model_run_s"] is None
    assert len(list((tmp_path / "cache" / "predictions").glob("*.json.gz"))) == 1
    # Another model config is another entry.
    third = run_evaluation(
        config(tmp_path, "eval.warmup_iters=0", "eval.save_masks=false", "model.detections_per_img=3", out="third")
    )
    assert third["prediction_cache_hit"] is False
    assert len(list((tmp_path / "cache" / "predictions").glob("*.json.gz"))) == 2


def _sweep(tmp_path: Path, *extra: str) -> Path:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "evaluate.py",
        "-m",
        *FAST,
        "eval.warmup_iters=0",
        "eval.save_masks=false",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = list((tmp_path / "logs").rglob("sweep_summary.csv"))
    assert len(summaries) == 1, proc.stderr[-3000:]
    return summaries[0].parent


def _check_summary(sweep_dir: Path, n_jobs: int) -> list[dict]:
    wb = load_workbook(sweep_dir / "sweep_summary.xlsx")
    rows = list(wb.active.iter_rows(values_only=True))
    header = list(rows[0])
    table = [dict(zip(header, r)) for r in rows[1:]]
    with open(sweep_dir / "sweep_summary.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(table) == len(csv_rows) == n_jobs
    for row, csv_row in zip(table, csv_rows):
        metrics = json.loads((sweep_dir / str(row["job"]) / "metrics.json").read_text())
        assert row["status"] == "ok"
        for key, value in metrics.items():
            if isinstance(value, dict):
                assert key not in row, key  # nested blocks (per_class) stay in the job's own files
            elif isinstance(value, float):
                assert float(csv_row[key]) == value, key  # CSV keeps every digit
                assert row[key] == pytest.approx(value, rel=1e-12), key  # openpyxl writes 15 significant digits
            else:
                assert row[key] == value, key
        assert row["experiment"] == "smoke" and row["model.weights"] is None
    assert (sweep_dir / "sweep_summary.png").stat().st_size > 1000
    page = (sweep_dir / "sweep_report.html").read_text()
    assert all(f'href="{row["job"]}/report.html"' in page for row in table)
    assert all((sweep_dir / str(row["job"]) / "report.html").is_file() for row in table)
    return table


def test_threshold_sweep_runs_the_model_once_and_summarises(tmp_path):
    sweep_dir = _sweep(tmp_path, "eval.score_threshold=0.3,0.6")
    table = _check_summary(sweep_dir, 2)
    assert [r["eval.score_threshold"] for r in table] == [0.3, 0.6]
    assert [r["score_threshold"] for r in table] == [0.3, 0.6]
    assert [r["prediction_cache_hit"] for r in table] == [False, True]
    assert len(list((tmp_path / "cache" / "predictions").glob("*.json.gz"))) == 1
    # Both jobs scored the same predictions: AP does not depend on the threshold.
    assert table[0]["segm_AP"] == table[1]["segm_AP"]
    assert table[0]["num_predictions"] >= table[1]["num_predictions"]
    # The sweep compares its jobs by itself (insseg.compare.sweep): the swept threshold is the difference.
    compared = json.loads((sweep_dir / "compare.json").read_text())
    assert compared["settings_differ"] == ["eval.score_threshold 0.3 in 0 vs 0.6 in 1"]
    assert compared["metrics"]["segm_AP"]["delta"] in (0.0, None)


@pytest.mark.slow
def test_parallel_joblib_sweep_shares_one_cache_entry(tmp_path):
    sweep_dir = _sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "eval.score_threshold=0.2,0.4,0.6")
    table = _check_summary(sweep_dir, 3)
    assert sum(not r["prediction_cache_hit"] for r in table) == 1
    assert len(list((tmp_path / "cache" / "predictions").glob("*.json.gz"))) == 1


class _GT:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def _timed(timing):
    rec = record("a.png", np.zeros((0, 4, 4), bool), [])
    rec.timing = timing
    return rec


def test_timing_evaluator_sums_timed_records_only():
    timing = TimingEvaluator()
    timing.process(ImageSample(_GT(2), _timed(ImageTiming(0.01, 0.02, 0.005))))
    timing.process(ImageSample(_GT(0), _timed(ImageTiming(0.01, 0.02, 0.025))))
    timing.process(ImageSample(_GT(5), _timed(None)))  # a warm-up record: not counted
    s = timing.evaluate(None)
    assert s["timed_images"] == 2
    assert s["time_total_ms_per_image"] == pytest.approx(1000 * 0.09 / 2)
    assert s["time_total_ms_per_object"] == pytest.approx(1000 * 0.09 / 2)
    assert s["time_postprocess_ms_per_image"] == pytest.approx(15.0)


def test_cache_key_follows_the_weights_file(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x" * 10)
    first = weights_identity(str(weights), "maskrcnn")
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))
    assert weights_identity(str(weights), "maskrcnn") != first
    assert weights_identity(str(tmp_path / "none.pt"), "maskrcnn")["missing"] is True
    assert weights_identity(None, "maskrcnn") == {"weights": None}
