"""python -m insseg.compare: paired bootstrap comparison of evaluate.py runs (run dirs made from predictions files
with run_evaluation on a generated VOC-layout set; no model runs)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from openpyxl import load_workbook
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from insseg.compare.__main__ import main
from insseg.compare.accumulate import DetectionTable, _min_counts, ap_stats
from insseg.compare.bootstrap import ImageSums, resample_weights
from insseg.compare.checks import check_settings
from insseg.compare.pipeline import bootstrap_result, compare_runs, rebuild_runs
from insseg.compare.result import METRICS
from insseg.compare.sweep import compare_sweep
from insseg.config import compose_config
from insseg.data import build_dataset
from insseg.evaluation.boundary import DEFAULT_DILATION_RATIO
from insseg.evaluation.boundary_cocoeval import boundary_cocoeval
from insseg.evaluation.matching import MatchingAccumulator
from insseg.evaluation.pipeline import run_evaluation
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

REPO = Path(__file__).resolve().parents[1]
DATA = [
    "model.weights=null",
    "device=cpu",
    "data.num_workers=0",
    "data.layout=voc",
    "data.synthetic.num_images=24",  # 8 validation images, the first without objects
    "data.synthetic.height=64",
    "data.synthetic.width=80",
    "eval.save_masks=false",
    "eval.reports.gallery=0",
    "eval.reports.confusion=false",
    "eval.reports.pr_curves=false",
]


def config(tmp: Path, *overrides: str, out: str):
    paths = [f"paths.data_dir={tmp / 'data'}", f"paths.cache_dir={tmp / 'cache'}", f"paths.log_dir={tmp / 'logs'}"]
    return compose_config("evaluate", [*DATA, *paths, *overrides], output_dir=tmp / out)


def boxes_of(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(masks), 4), np.float32)
    for k, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if ys.size:
            boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return boxes


def predictions_file(cfg, path: Path, edit=None) -> Path:
    """The ground truth as predictions (score 1), each image's (masks, labels, scores) passed through ``edit``."""
    dataset = build_dataset(cfg.data, "eval")
    names = list(dataset.class_names)
    predictions = PredictionSet(names)
    for i in range(len(dataset)):
        ann = dataset.annotation(i)
        masks, labels, scores = ann.masks(), np.asarray(ann.labels), np.ones(len(ann), np.float32)
        if edit is not None:
            masks, labels, scores = edit(i, masks, labels, scores)
        h, w = ann.height, ann.width
        rec = ImagePrediction(
            dataset.file_name(i),
            h,
            w,
            boxes_of(masks),
            np.asarray(scores, np.float32),
            np.asarray(labels, np.int64),
            encode_masks(masks.reshape(-1, h, w)),
            class_names=names,
        )
        predictions.images.append(rec)
    predictions.write(path)
    return path


def make_run(tmp: Path, name: str, edit=None, *overrides: str) -> Path:
    """A run dir as evaluate.py leaves it (predictions.json, metrics.json, ..., and the resolved config)."""
    cfg = config(tmp, *overrides, out=name)
    source = predictions_file(cfg, tmp / f"{name}_source.json", edit)
    cfg = config(tmp, *overrides, f"eval.predictions={source}", out=name)
    run_evaluation(cfg)
    OmegaConf.save(cfg, tmp / name / "config.yaml", resolve=True)
    return tmp / name


def drop_first_object(image: int):
    def edit(i, masks, labels, scores):
        if i == image:
            return masks[1:], labels[1:], scores[1:]
        return masks, labels, scores

    return edit


def noisy(i, masks, labels, scores):
    """Shift every other object by 2 pixels, drop one, add a false positive; scores 0.1 apart (ties too)."""
    rng = np.random.default_rng(i)
    masks = masks.copy()
    masks[::2] = np.roll(masks[::2], 2, axis=2)
    if i % 3 == 1 and len(masks) > 1:
        masks, labels = masks[1:], labels[1:]
    extra = np.zeros((1, *masks.shape[1:]), bool)
    extra[0, 5:20, 5:25] = True
    masks = np.concatenate([masks, extra])
    labels = np.append(labels, 1 + i % 20)
    scores = np.round(rng.uniform(0.2, 1.0, len(masks)), 1)
    return masks, labels, scores


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    return tmp, {
        "perfect": make_run(tmp, "perfect"),
        "missed": make_run(tmp, "missed", drop_first_object(1)),
        "noisy": make_run(tmp, "noisy", noisy),
    }


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_a_run_against_itself_gives_zero_delta_and_zero_interval(runs, tmp_path):
    _, r = runs
    result = bootstrap_result(rebuild_runs([r["noisy"], r["noisy"]])[0], resamples=50, seed=0)
    recorded = metrics_of(r["noisy"])
    assert set(result["metrics"]) == {m for m in METRICS if m in recorded}
    for name, item in result["metrics"].items():
        assert item["a"] == item["b"] == recorded[name], name
        assert item["delta"] == 0.0 and item["ci95"] == [0.0, 0.0], name
    for row in result["per_class"].values():
        for key in ("segm_AP", "bbox_AP", "boundary_AP"):
            assert row is None or (row[key]["delta"] == 0.0 and row[key]["ci95"] == [0.0, 0.0])
    wins = result["images"]["wins_by_mean_iou"]
    assert wins["a"] == wins["b"] == 0 and wins["ties"] == wins["images_with_objects"] == 7


def test_designed_pair_gives_the_hand_computed_deltas(runs, tmp_path):
    """B misses one object of image 1, which A (the ground truth itself) finds: N objects in all."""
    tmp, r = runs
    cfg = config(tmp, out="unused")
    dataset = build_dataset(cfg.data, "eval")
    anns = [dataset.annotation(i) for i in range(len(dataset))]
    n = sum(len(a) for a in anns)
    missed_class = int(anns[1].labels[0])
    n_class = sum(int((a.labels == missed_class).sum()) for a in anns)
    classes = {int(k) for a in anns for k in a.labels}
    recall_points = np.linspace(0, 1, 101)
    class_ap = np.count_nonzero(recall_points <= (n_class - 1) / n_class) / 101  # precision 1 up to its recall
    expected_ap = (len(classes) - 1 + class_ap) / len(classes) - 1.0

    result = bootstrap_result(rebuild_runs([r["perfect"], r["missed"]])[0], resamples=200, seed=1)
    m = result["metrics"]
    assert m["mean_iou"]["delta"] == pytest.approx(-1 / n, abs=1e-12)
    assert m["mean_f1"]["delta"] == pytest.approx(-1 / n, abs=1e-12)
    assert m["instance_precision"]["delta"] == 0.0
    assert m["instance_recall"]["delta"] == pytest.approx(-1 / n, abs=1e-12)
    assert m["instance_f1"]["delta"] == pytest.approx(2 * (n - 1) / (2 * n - 1) - 1, abs=1e-12)
    for key in ("segm_AP", "bbox_AP", "segm_AP50", "bbox_AP75"):
        assert m[key]["delta"] == pytest.approx(expected_ap, abs=1e-12), key
    # B never beats A: every interval lies at or below 0 and holds the observed delta
    for key, item in m.items():
        assert item["ci95"][1] <= 1e-12 and item["ci95"][0] <= item["delta"] + 1e-12, key
    name = dataset.annotation(1).file_name
    assert result["per_class"][dataset.class_names[missed_class - 1]]["segm_AP"]["delta"] == pytest.approx(class_ap - 1)
    wins = result["images"]["wins_by_mean_iou"]
    assert (wins["a"], wins["b"], wins["ties"]) == (1, 0, 6)
    top = result["images"]["most_different"][0]
    assert top["image"] == name and top["a"]["missed"] == 0 and top["b"]["missed"] == 1
    assert top["mean_iou_delta"] == pytest.approx(-1 / len(anns[1]))


def test_values_are_the_runs_metrics_json_and_files_are_written(runs, tmp_path):
    _, r = runs
    out = tmp_path / "out"
    assert main([str(r["perfect"]), str(r["noisy"]), "--out", str(out), "--resamples", "30"]) == 0
    result = json.loads((out / "compare.json").read_text())
    a, b = metrics_of(r["perfect"]), metrics_of(r["noisy"])
    assert result["runs"] == [str(r["perfect"].resolve()), str(r["noisy"].resolve())] and result["num_images"] == 8
    assert set(result["metrics"]) == {m for m in METRICS if m in a}
    assert {"boundary_AP", "mean_boundary_iou", "segm_AP", "instance_f1"} <= set(result["metrics"])
    for name, item in result["metrics"].items():
        assert item["a"] == a[name] and item["b"] == b[name] and item["delta"] == b[name] - a[name], name
    for cls, row in result["per_class"].items():
        for key in ("segm_AP", "bbox_AP", "boundary_AP"):
            if row is None:
                assert a["per_class"][cls] is None
            else:
                assert row[key]["a"] == a["per_class"][cls][key] and row[key]["b"] == b["per_class"][cls][key]
    assert len(result["images"]["most_different"]) == 8  # every image, fewer than 16
    wins = result["images"]["wins_by_boundary_iou"]
    assert wins["a"] + wins["b"] + wins["ties"] == wins["images_with_objects"] == 7
    sheets = load_workbook(out / "compare.xlsx").sheetnames
    assert sheets == ["metrics", "per_class", "images", "runs"]
    page = (out / "compare.html").read_text()
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    pictures = sorted((out / "compare_files").rglob("*.png"))
    assert {p.name for p in pictures} >= {"per_class_1.png", "pr_curves.png"} and len(pictures) == 10
    for p in pictures:
        assert f'src="{p.relative_to(out).as_posix()}"' in page
    first = sorted((out / "compare_files" / "gallery_1").iterdir())[0]
    assert Image.open(first).size == (2 * 80 + 8, 64)  # A | B


def coco_of(images, anns, is_dt: bool, weights, iou_type: str) -> COCO:
    """The multiset: image j taken weights[j] times, copies given consecutive new ids in image order."""
    order = sorted(range(len(images)), key=lambda j: images[j]["id"])
    new_images, new_anns = [], []
    for j in order:
        for _ in range(int(weights[j])):
            new_id = len(new_images) + 1
            new_images.append({**images[j], "id": new_id})
            for a in anns:
                if a["image_id"] == images[j]["id"]:
                    a = {**a, "image_id": new_id, "id": len(new_anns) + 1}
                    if is_dt:
                        a["iscrowd"] = 0
                        seg_area = float(mask_utils.area(a["segmentation"]))
                        a["area"] = seg_area if iou_type != "bbox" else float(a["bbox"][2] * a["bbox"][3])
                    new_anns.append(a)
    coco = COCO()
    coco.dataset = {"images": new_images, "annotations": new_anns, "categories": [{"id": k} for k in range(1, 21)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def pycocotools_ap(coco_eval_state, weights, iou_type="segm") -> float:
    """AP of the multiset by pycocotools (Boundary AP: the official API's COCOeval, insseg.evaluation.boundary)."""
    images, gt, dt = coco_eval_state
    cocos = coco_of(images, gt, False, weights, iou_type), coco_of(images, dt, True, weights, iou_type)
    if iou_type == "boundary":
        ev = boundary_cocoeval(*cocos, DEFAULT_DILATION_RATIO, backend="pycocotools")
    else:
        ev = COCOeval(*cocos, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]) if ev.stats[0] > -1 else float("nan")


@pytest.mark.parametrize("iou_type", ["segm", "boundary"])
def test_ap_interval_equals_pycocotools_on_the_same_resampled_multisets(runs, iou_type):
    _, r = runs
    resamples, seed = 12, 7
    runs_data, _ = rebuild_runs([r["perfect"], r["noisy"]])
    result = bootstrap_result(runs_data, resamples=resamples, seed=seed)
    weights = resample_weights(8, resamples, seed)
    deltas = []
    for w in weights:
        aps = [pycocotools_ap((d.coco.images, d.coco.gt, d.coco.dt), w, iou_type) for d in runs_data]
        deltas.append(aps[1] - aps[0])
    deltas = np.array(deltas)
    deltas = deltas[np.isfinite(deltas)]
    assert result["metrics"][f"{iou_type}_AP"]["ci95"] == np.percentile(deltas, [2.5, 97.5]).tolist()


def test_matching_metrics_of_a_resample_equal_the_accumulator_over_the_multiset(runs):
    _, r = runs
    run = rebuild_runs([r["noisy"]] * 2)[0][0]
    sums = ImageSums.from_matches(run.matches, run.boundary)
    weights = resample_weights(8, 6, seed=3)
    values = sums.metrics(weights)
    for k, w in enumerate(weights):
        acc = MatchingAccumulator()
        for match, times in zip(run.matches, w):
            for _ in range(times):
                acc.add(match)
        expected = acc.summary()
        for name in ("mean_iou", "mean_f1", "mean_iou_with_bg", "instance_precision", "instance_recall", "instance_f1"):
            assert values[name][k] == pytest.approx(expected[name], abs=1e-12), name
        objects = sum(m.num_objects * t for m, t in zip(run.matches, w))
        boundary = sum(b[0] * t for b, t in zip(run.boundary, w))
        assert values["mean_boundary_iou"][k] == pytest.approx(boundary / max(objects, 1), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_reaccumulation_equals_pycocotools_accumulate(seed):
    """Random boxes with crowd regions, scores tied within and across images, images drawn 0-3 times."""
    rng = np.random.default_rng(seed)
    images, gt, dt = [], [], []
    for i in range(10):
        iid = 50 - 3 * i  # ids not in image order
        images.append({"id": iid, "height": 100, "width": 100})
        for _ in range(rng.integers(0, 4)):
            x, y, w, h = *rng.uniform(0, 60, 2), *rng.uniform(5, 40, 2)
            c = int(rng.integers(1, 4))
            gt.append({"image_id": iid, "category_id": c, "bbox": [x, y, w, h], "iscrowd": int(rng.random() < 0.15)})
            for _ in range(rng.integers(0, 3)):
                j = rng.normal(0, 4, 4)
                box = [x + j[0], y + j[1], max(1, w + j[2]), max(1, h + j[3])]
                cat = c if rng.random() < 0.8 else int(rng.integers(1, 4))
                dt.append({"image_id": iid, "category_id": cat, "bbox": box, "score": float(rng.integers(1, 6) / 5)})
    # for sure: a detection on a crowd region (ignored) and two tied detections of one image and class
    gt.append({"image_id": 50, "category_id": 1, "bbox": [60, 60, 30, 30], "iscrowd": 1})
    dt.append({"image_id": 50, "category_id": 1, "bbox": [61, 61, 28, 28], "score": 0.4})
    dt += [{"image_id": 47, "category_id": 2, "bbox": [0, 0, 9 + k, 9], "score": 0.6} for k in range(2)]
    for a in gt + dt:
        a["area"] = a["bbox"][2] * a["bbox"][3]

    def evaluated(weights):
        cocos = []
        for anns in (gt, dt):
            c = COCO()
            new_images, new_anns = [], []
            for j in sorted(range(len(images)), key=lambda j: images[j]["id"]):
                for _ in range(int(weights[j])):
                    new_images.append({**images[j], "id": len(new_images) + 1})
                    new_anns += [{**a, "image_id": len(new_images)} for a in anns if a["image_id"] == images[j]["id"]]
            new_anns = [{**a, "id": k + 1} for k, a in enumerate(new_anns)]
            c.dataset = {"images": new_images, "annotations": new_anns, "categories": [{"id": k} for k in (1, 2, 3)]}
            with contextlib.redirect_stdout(io.StringIO()):
                c.createIndex()
            cocos.append(c)
        ev = COCOeval(*cocos, "bbox")
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev

    ev = evaluated(np.ones(10, np.int64))  # image j gets id 1 + its rank by original id
    order = sorted(range(len(images)), key=lambda j: images[j]["id"])
    table = DetectionTable.from_cocoeval(ev, [order[i - 1] for i in ev.params.imgIds], len(images))
    assert table.any_ignored and not table.unit_groups  # detections on crowd regions; ties within an image
    for weights in [np.ones(10, np.int64), *rng.integers(0, 4, (4, 10))]:
        if not weights.any():
            continue
        ref = evaluated(weights)
        ours = table.precision(weights)
        assert np.array_equal(ours, ref.eval["precision"][:, :, :, 0, 2])
        got = [np.nan_to_num(v, nan=-1.0) for v in ap_stats(ours, table.iou_thrs)]
        assert got == ref.stats[:3].tolist()


def test_min_counts_match_float_division():
    thresholds = np.linspace(0, 1, 101)
    npig = np.arange(1, 400)
    counts = _min_counts(thresholds, npig)
    for k, n in enumerate(npig):
        rc = np.arange(n + 1) / n
        assert np.array_equal(np.searchsorted(rc, thresholds, side="left"), counts[k]), n


def _refused(capsys, tmp_path, *args: str) -> str:
    out = tmp_path / "refused"
    assert main([*args, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err.strip()


def test_refuses_other_images(runs, capsys, tmp_path):
    tmp, r = runs
    fewer = make_run(tmp, "fewer", None, "data.max_eval_images=5")
    line = _refused(capsys, tmp_path, str(r["perfect"]), str(fewer))
    assert line == (
        f"error: cannot compare {r['perfect'].resolve()} and {fewer.resolve()}: they were evaluated on different "
        "images (8 and 5; the first difference is image 6: 2099_000005.jpg against no image)"
    )


def test_refuses_other_annotations(runs, capsys, tmp_path):
    tmp, r = runs
    copy = tmp / "data_copy"
    if not copy.exists():
        shutil.copytree(tmp / "data" / "synthetic_voc", copy)
        png = copy / "SegmentationObject" / "2099_000003.png"
        im = Image.open(png)
        arr = np.asarray(im).copy()
        arr[arr == 1] = 0  # one object becomes background
        out = Image.fromarray(arr, mode="P")
        out.putpalette(im.getpalette())
        out.save(png)
    other = make_run(tmp, "other_gt", None, f"data.root={copy}")
    line = _refused(capsys, tmp_path, str(r["perfect"]), str(other))
    assert line == (
        f"error: cannot compare {r['perfect'].resolve()} and {other.resolve()}: they were evaluated against "
        f"different annotations ({tmp / 'data' / 'synthetic_voc'} and {copy}); the first difference is the "
        "ground truth of 2099_000003.jpg"
    )


class _Run:
    """What the settings check reads of a run: its dir, its config's eval block, its metrics.json."""

    def __init__(self, name: str, ratio: float | None = None, **settings) -> None:
        self.run_dir = Path("/runs") / name
        self.metrics = {} if ratio is None else {"boundary_AP": 0.5, "boundary_dilation_ratio": ratio}
        self.cfg = OmegaConf.create(
            {
                "eval": {
                    "void_as_background": False,
                    "score_threshold": 0.5,
                    "class_aware_matching": False,
                    "keep_unmapped": False,
                }
            }
        )
        for key, value in settings.items():
            self.cfg.eval[key] = value


@pytest.mark.parametrize(
    "settings, shown",
    [
        ({"ratio": 0.01}, "eval.boundary.dilation_ratio 0.02 in a vs 0.01 in b"),
        ({"score_threshold": 0.3}, "eval.score_threshold 0.5 in a vs 0.3 in b"),
        ({"void_as_background": True}, "eval.void_as_background False in a vs True in b"),
        ({"class_aware_matching": True}, "eval.class_aware_matching False in a vs True in b"),
        ({"keep_unmapped": True}, "eval.keep_unmapped False in a vs True in b"),
    ],
)
def test_refusal_line_of_each_setting(settings, shown):
    from insseg.errors import InssegError

    pair = [_Run("a", ratio=0.02), _Run("b", **{"ratio": 0.02, **settings})]
    with pytest.raises(InssegError) as info:
        check_settings(pair, allow=False)
    assert str(info.value) == (
        f"cannot compare /runs/a and /runs/b: their evaluation settings differ ({shown}), which changes the "
        "numbers; pass --allow-settings-differ to compare them anyway"
    )
    assert check_settings(pair, allow=True) == [shown]
    assert check_settings([_Run("a", ratio=0.02), _Run("b", ratio=0.02)], allow=False) == []
    # boundary metrics in one run only: they are not compared, so their band width does not matter
    assert check_settings([_Run("a", ratio=0.02), _Run("b")], allow=False) == []


def test_refuses_another_score_threshold_unless_allowed(runs, capsys, tmp_path):
    tmp, r = runs
    other = make_run(tmp, "threshold", None, "eval.score_threshold=0.3")
    line = _refused(capsys, tmp_path, str(r["perfect"]), str(other))
    assert line == (
        f"error: cannot compare {r['perfect'].resolve()} and {other.resolve()}: their evaluation settings differ "
        "(eval.score_threshold 0.5 in perfect vs 0.3 in threshold), which changes the numbers; pass "
        "--allow-settings-differ to compare them anyway"
    )
    out = tmp_path / "allowed"
    assert main([str(r["perfect"]), str(other), "--out", str(out), "--resamples", "5", "--allow-settings-differ"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["settings_differ"] == ["eval.score_threshold 0.5 in perfect vs 0.3 in threshold"]
    assert result["metrics"]["mean_iou"]["b"] == metrics_of(other)["mean_iou"]


def test_boundary_metrics_are_compared_only_when_both_runs_have_them(runs):
    tmp, r = runs
    plain = make_run(tmp, "no_boundary", None, "eval.boundary=false")
    assert "boundary_AP" not in metrics_of(plain)
    runs_data, differences = rebuild_runs([r["noisy"], plain])
    assert differences == [] and runs_data[1].boundary is None and "boundary" not in runs_data[1].tables
    result = bootstrap_result(runs_data, resamples=5, seed=0)
    assert "boundary_AP" not in result["metrics"] and "mean_boundary_iou" not in result["metrics"]
    assert "segm_AP" in result["metrics"] and "wins_by_boundary_iou" not in result["images"]


def test_three_runs_each_against_the_first(runs, tmp_path):
    _, r = runs
    result = compare_runs([r["perfect"], r["missed"], r["noisy"]], tmp_path / "out", resamples=10)
    assert [o["run"] for o in result["others"]] == [str(r["noisy"].resolve())]
    assert result["others"][0]["metrics"]["mean_iou"]["b"] == metrics_of(r["noisy"])["mean_iou"]
    assert (tmp_path / "out" / "compare_files" / "gallery_2").is_dir()


def test_sweep_comparison_of_the_finished_jobs(runs, tmp_path):
    _, r = runs
    sweep = tmp_path / "sweep"
    for job, run in (("0", r["perfect"]), ("1", r["missed"]), ("2", None)):
        if run is None:
            (sweep / job / ".hydra").mkdir(parents=True)  # a failed job: no metrics.json
        else:
            shutil.copytree(run, sweep / job)
    result = compare_sweep(sweep, resamples=10)
    assert result["runs"] == [str(sweep / "0"), str(sweep / "1")]
    assert (
        json.loads((sweep / "compare.json").read_text())["metrics"]["mean_iou"]["b"]
        == metrics_of(r["missed"])["mean_iou"]
    )
    assert (sweep / "compare.html").is_file()


@pytest.mark.slow
def test_sweep_writes_the_comparison(runs, tmp_path):
    tmp, r = runs
    a, b = r["perfect"] / "predictions.json", r["noisy"] / "predictions.json"
    cmd = [
        sys.executable,
        "evaluate.py",
        "-m",
        *DATA,
        f"paths.data_dir={tmp / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"eval.predictions={a},{b}",
        "hydra.callbacks.compare.resamples=20",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep_dir,) = {p.parent for p in (tmp_path / "logs").rglob("compare.json")}
    result = json.loads((sweep_dir / "compare.json").read_text())
    assert result["runs"] == [str(sweep_dir / "0"), str(sweep_dir / "1")] and result["resamples"] == 20
    for name, item in result["metrics"].items():
        assert item["a"] == metrics_of(r["perfect"])[name] and item["b"] == metrics_of(r["noisy"])[name], name
    assert (sweep_dir / "compare.html").is_file() and (sweep_dir / "compare.xlsx").is_file()
