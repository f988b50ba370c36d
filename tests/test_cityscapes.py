"""data=cityscapes and the Cityscapes protocol: the reader of the official layout, our evaluator against
cityscapesScripts' evalInstanceLevelSemanticLabeling run directly on the same files (hand-known answers: perfect
predictions, group and void regions, the minimum region size, the ignore-overlap rule), the wrapper's fixes (a
fresh ground-truth cache every run, nothing written into the package folder or the working directory), the
pipeline, check/export_coco, and a smoke training on the synthetic layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import smoke_overrides
from PIL import Image

from insseg.config import compose_config
from insseg.data.cityscapes import CITYSCAPES_CLASSES, CityscapesReader
from insseg.data.synthetic_cityscapes import generate_cityscapes
from insseg.evaluation.cityscapes_eval import RESULTS_DIR, CityscapesEvaluator
from insseg.evaluation.cityscapes_protocol import load_official, numpy_for_official, write_json
from insseg.evaluation.sample import ImageSample
from insseg.predictions import ImagePrediction, PredictionSet, encode_masks

H, W = 64, 96
CAR, PERSON = 26, 24
NAMES = [n for n, _ in CITYSCAPES_CLASSES]


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def write_scene(root: Path, frame: str, ids: np.ndarray, split: str = "val") -> str:
    """One image + its instanceIds PNG in the official layout; returns its file_name."""
    city = frame.split("_")[0]
    for sub, suffix, array in (
        ("leftImg8bit", "_leftImg8bit.png", np.full((H, W, 3), 90, np.uint8)),
        ("gtFine", "_gtFine_instanceIds.png", ids.astype(np.uint16)),
    ):
        folder = root / sub / split / city
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / f"{frame}{suffix}")
    return f"{city}/{frame}_leftImg8bit.png"


def base_ids() -> np.ndarray:
    ids = np.full((H, W), 7, np.int32)  # road
    ids[H - 4 :] = 1  # ego vehicle: void
    return ids


def prediction(file_name: str, masks: list[np.ndarray], names: list[str], scores: list[float]) -> ImagePrediction:
    stack = np.stack(masks) if masks else np.zeros((0, H, W), bool)
    return ImagePrediction(
        file_name,
        H,
        W,
        np.zeros((len(masks), 4), np.float32),
        np.asarray(scores, np.float32),
        np.asarray([NAMES.index(n) + 1 for n in names], np.int64),
        encode_masks(stack),
        class_names=NAMES,
    )


def ours(root: Path, preds: list[ImagePrediction], out_dir: Path | None) -> dict:
    reader = CityscapesReader(root, "val")
    gt_files = {reader.file_name(i): reader.gt_path(i) for i in range(len(reader))}
    evaluator = CityscapesEvaluator(NAMES, gt_files, out_dir)
    for i, pred in enumerate(preds):
        evaluator.process(ImageSample(reader.annotation(i), pred))
    return evaluator.evaluate()


def official(root: Path, results: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """evalInstanceLevelSemanticLabeling as its README runs it (ground truth list, getPrediction finds each txt in
    the results folder), with only numpy 2 patched: np.in1d, and numpy ints in its JSON writer."""
    mod = load_official()
    gts = sorted(str(p) for p in (root / "gtFine" / "val").glob("*/*_gtFine_instanceIds.png"))
    with monkeypatch.context() as m:
        m.setattr(mod, "np", numpy_for_official())
        m.setattr(mod, "writeDict2JSON", write_json)
        for key, value in {
            "predictionPath": None,
            "predictionWalk": None,
            "gtInstancesFile": str(work / "gtInstances.json"),
            "JSONOutput": False,
            "quiet": True,
        }.items():
            m.setattr(mod.args, key, value)
        m.setenv("CITYSCAPES_RESULTS", str(results))
        work.mkdir(exist_ok=True)
        m.chdir(work)
        preds = [mod.getPrediction(gt, mod.args) for gt in gts]
        return mod.evaluateImgLists(preds, gts, mod.args)["averages"]


def both(root: Path, preds: list[ImagePrediction], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    mine = ours(root, preds, tmp / "run")
    return mine, official(root, tmp / "run" / RESULTS_DIR, tmp / "official", monkeypatch)


def assert_same(mine: dict, theirs: dict) -> None:
    for key, their_key in (("cityscapes_AP", "allAp"), ("cityscapes_AP50", "allAp50%")):
        assert mine[key] == pytest.approx(float(theirs[their_key]), abs=1e-12, nan_ok=True)
    for name, row in theirs["classes"].items():
        assert mine["per_class"][name]["cityscapes_AP"] == pytest.approx(float(row["ap"]), abs=1e-12, nan_ok=True)


def test_classes_are_the_official_evaluated_instance_classes() -> None:
    from cityscapesscripts.helpers.labels import labels

    official_classes = [(lb.name, lb.id) for lb in labels if lb.hasInstances and not lb.ignoreInEval]
    assert list(CITYSCAPES_CLASSES) == official_classes


def test_reader_turns_group_regions_into_crowd(tmp_path: Path) -> None:
    ids = base_ids()
    ids[box(5, 25, 5, 25)] = CAR * 1000
    ids[box(5, 25, 40, 60)] = CAR  # a car group: no instance id
    ids[box(30, 50, 5, 15)] = PERSON * 1000 + 3
    write_scene(tmp_path, "frankfurt_000000_000019", ids)
    reader = CityscapesReader(tmp_path, "val")
    ann = reader.annotation(0)
    assert reader.file_name(0) == "frankfurt/frankfurt_000000_000019_leftImg8bit.png" and ann.image_id == 1
    assert sorted(ann.labels.tolist()) == [1, 3] and len(ann.crowd_rles) == 1
    assert ann.ignore().sum() == 400  # the group region only: void (ego vehicle) is background here
    crowd = [e for e in ann.coco_entries if e["iscrowd"]]
    assert [(e["category_id"], e["area"]) for e in crowd] == [(CAR, 400.0)]


def test_missing_files_are_one_clear_error(tmp_path: Path) -> None:
    from insseg.data.build import open_reader
    from insseg.errors import DatasetError

    cfg = compose_config("evaluate", ["data=cityscapes", f"data.root={tmp_path / 'none'}"]).data
    with pytest.raises(DatasetError, match="needs a login"):
        open_reader(cfg, "eval")
    write_scene(tmp_path, "frankfurt_000000_000019", base_ids())
    (tmp_path / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_instanceIds.png").unlink()
    with pytest.raises(DatasetError, match="frankfurt_000000_000019_gtFine_instanceIds.png"):
        CityscapesReader(tmp_path, "val")


def test_perfect_predictions_score_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenes = []
    for k, frame in enumerate(("frankfurt_000000_000019", "lindau_000001_000019")):
        ids = base_ids()
        ids[box(5, 25, 5 + k, 30)] = CAR * 1000
        ids[box(30, 55, 40, 50 + k)] = PERSON * 1000 + 1
        scenes.append((write_scene(tmp_path, frame, ids), [box(5, 25, 5 + k, 30), box(30, 55, 40, 50 + k)]))
    preds = [prediction(f, m, ["car", "person"], [0.9, 0.8]) for f, m in scenes]
    mine, theirs = both(tmp_path, preds, tmp_path, monkeypatch)
    assert mine["cityscapes_AP"] == 1.0 and mine["cityscapes_AP50"] == 1.0
    assert mine["per_class"]["car"]["cityscapes_AP"] == 1.0 and math.isnan(mine["per_class"]["bus"]["cityscapes_AP"])
    assert_same(mine, theirs)
    txt = (tmp_path / "run" / RESULTS_DIR / "lindau" / "lindau_000001_000019_pred.txt").read_text().splitlines()
    assert [line.split()[1] for line in txt] == ["26", "24"]  # <mask png> <label id> <score>


# A car (400 px, found exactly) and a second car prediction with a higher score elsewhere. Counted as a false
# positive the official curve gives AP 0.25 (precision 1/2 at recall 1, times the step width 1/2); over a group
# region or void it is ignored (AP 1); 72% on a group region it is ignored at IoU thresholds below 0.72 only:
# AP = (5 x 1 + 5 x 0.25) / 10 = 0.625, AP50 = 1.
@pytest.mark.parametrize(
    "where, ap, ap50",
    [("background", 0.25, 0.25), ("group", 1.0, 1.0), ("void", 1.0, 1.0), ("72% group", 0.625, 1.0)],
)
def test_ignore_regions_follow_the_official_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, ap: float, ap50: float
) -> None:
    ids = base_ids()
    ids[box(5, 25, 5, 25)] = CAR * 1000
    ids[box(30, 40, 40, 50)] = CAR  # 100 px group region
    extra = {
        "background": box(30, 40, 70, 80),
        "group": box(30, 40, 40, 50),
        "void": box(H - 4, H, 60, 85),
        "72% group": box(30, 39, 42, 50) | box(30, 37, 50, 54),
    }[where]
    assert extra.sum() == 100 and (extra & box(30, 40, 40, 50)).sum() == {"group": 100, "72% group": 72}.get(where, 0)
    f = write_scene(tmp_path, "frankfurt_000000_000019", ids)
    pred = prediction(f, [box(5, 25, 5, 25), extra], ["car", "car"], [0.9, 0.95])
    mine, theirs = both(tmp_path, [pred], tmp_path, monkeypatch)
    assert mine["per_class"]["car"]["cityscapes_AP"] == pytest.approx(ap, abs=1e-12)
    assert mine["per_class"]["car"]["cityscapes_AP50"] == pytest.approx(ap50, abs=1e-12)
    assert_same(mine, theirs)


@pytest.mark.parametrize("predict_small", [False, True])
def test_instances_under_100_pixels_count_neither_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, predict_small: bool
) -> None:
    """A 9x9 car (81 px < the 100 px minimum region size): missing it is no false negative, and a prediction
    on it (with the highest score) is no false positive."""
    ids = base_ids()
    ids[box(5, 25, 5, 25)] = CAR * 1000
    ids[box(30, 39, 40, 49)] = CAR * 1000 + 1
    f = write_scene(tmp_path, "frankfurt_000000_000019", ids)
    masks, scores = [box(5, 25, 5, 25)], [0.9]
    if predict_small:
        masks, scores = masks + [box(30, 39, 40, 49)], scores + [0.95]
    mine, theirs = both(tmp_path, [prediction(f, masks, ["car"] * len(masks), scores)], tmp_path, monkeypatch)
    assert mine["cityscapes_AP"] == 1.0
    assert_same(mine, theirs)


def test_each_run_reads_its_own_ground_truth(tmp_path: Path) -> None:
    """Two runs in one process on different ground truth at the same path: the second adds a car that the
    prediction misses. The official cache would hand the second run the first run's instance list (the new car
    unknown: AP 1.0 again); a fresh cache finds it: recall 1/2 at precision 1, AP 0.5."""
    ids = base_ids()
    ids[box(5, 25, 5, 25)] = CAR * 1000
    f = write_scene(tmp_path, "frankfurt_000000_000019", ids)
    pred = [prediction(f, [box(5, 25, 5, 25)], ["car"], [0.9])]
    assert ours(tmp_path, pred, None)["cityscapes_AP"] == 1.0
    ids[box(30, 50, 60, 90)] = CAR * 1000 + 1
    write_scene(tmp_path, "frankfurt_000000_000019", ids)
    assert ours(tmp_path, pred, None)["cityscapes_AP"] == 0.5


def test_nothing_is_written_into_the_package_or_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = Path(load_official().__file__).parent
    before = sorted(p.name for p in package.iterdir())
    ids = base_ids()
    ids[box(5, 25, 5, 25)] = CAR * 1000
    f = write_scene(tmp_path / "data", "frankfurt_000000_000019", ids)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ours(tmp_path / "data", [prediction(f, [box(5, 25, 5, 25)], ["car"], [0.9])], tmp_path / "run")
    assert sorted(p.name for p in package.iterdir()) == before and not list(cwd.iterdir())
    assert (tmp_path / "run" / "cityscapes_matches.json").is_file()


def _perfect_predictions(root: Path, path: Path, shift: int = 0) -> None:
    """predictions.json of the ground truth itself (the file's ids: image_id, Cityscapes label ids); ``shift``:
    every second mask moved right by that many pixels, with a lower score."""
    reader = CityscapesReader(root, "val")
    preds = PredictionSet(NAMES, info={"score_threshold": None}, category_ids=[i for _, i in CITYSCAPES_CLASSES])
    for i in range(len(reader)):
        ann = reader.annotation(i)
        masks = [np.roll(m, shift, axis=1) if k % 2 else m for k, m in enumerate(ann.masks())]
        scores = [0.9 - 0.1 * (k % 2) for k in range(len(ann))]
        rec = prediction(reader.file_name(i), masks, [NAMES[k - 1] for k in ann.labels], scores)
        rec.image_id = ann.image_id
        preds.images.append(rec)
    preds.write(path)


def test_evaluate_with_predictions_file_writes_both_protocols(tmp_path: Path) -> None:
    from insseg.evaluation.pipeline import run_evaluation

    root = generate_cityscapes(tmp_path / "cs", num_images=6, height=H, width=W, seed=1)
    _perfect_predictions(root, tmp_path / "perfect.json")
    overrides = [
        "data=cityscapes",
        f"data.root={root}",
        f"eval.predictions={tmp_path / 'perfect.json'}",
        "eval.reports.pr_curves=false",
        "eval.reports.confusion=false",
        "eval.reports.gallery=0",
        "eval.save_masks=false",
        "device=cpu",
    ]
    metrics = run_evaluation(compose_config("evaluate", overrides, output_dir=tmp_path / "run"))
    assert metrics["cityscapes_AP"] == 1.0 and metrics["cityscapes_AP50"] == 1.0 and metrics["segm_AP"] == 1.0
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = [r for r in written["per_class"].values() if r and r.get("segm_AP") is not None]
    assert rows and all(r["cityscapes_AP"] == 1.0 for r in rows)
    assert (tmp_path / "run" / RESULTS_DIR / "frankfurt").is_dir()


def test_check_and_export_coco_read_the_layout(tmp_path: Path) -> None:
    from insseg.data.check import main as check_main
    from insseg.data.export_coco import main as export_main

    root = generate_cityscapes(tmp_path / "cs", num_images=6, height=H, width=W, seed=2)
    args = ["data=cityscapes", f"data.root={root}"]
    assert check_main([*args, f"out={tmp_path / 'check'}"]) == 0
    report = json.loads((tmp_path / "check" / "dataset_report.json").read_text())
    assert report["splits"]["eval"]["images"] == 2 and report["splits"]["train"]["images"] == 4
    assert export_main([*args, f"out={tmp_path / 'coco'}"]) == 0
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_val2017.json").read_text())
    reader = CityscapesReader(root, "val")
    assert [im["id"] for im in coco["images"]] == [1, 2]
    assert [im["file_name"] for im in coco["images"]] == [reader.file_name(i) for i in range(2)]
    assert [c["id"] for c in coco["categories"]] == [i for _, i in CITYSCAPES_CLASSES]
    crowd = sum(len(reader.annotation(i).crowd_rles) for i in range(2))
    assert sum(a["iscrowd"] for a in coco["annotations"]) == crowd


def test_export_coco_ids_score_the_same_predictions(tmp_path: Path) -> None:
    """predictions.json of a Cityscapes run carries export_coco's ids: evaluating it as data=coco on the export
    gives the same COCO numbers, and a COCO results list with those ids gives the same numbers on data=cityscapes."""
    from insseg.data.export_coco import main as export_main
    from insseg.evaluation.pipeline import run_evaluation

    root = generate_cityscapes(tmp_path / "cs", num_images=9, height=H, width=W, seed=3, max_objects=4)
    _perfect_predictions(root, tmp_path / "shifted.json", shift=4)
    quiet = ["eval.reports.pr_curves=false", "eval.reports.confusion=false", "eval.reports.gallery=0", "device=cpu"]
    cs = run_evaluation(
        compose_config(
            "evaluate",
            ["data=cityscapes", f"data.root={root}", f"eval.predictions={tmp_path / 'shifted.json'}", *quiet],
            output_dir=tmp_path / "cs_run",
        )
    )
    assert export_main(["data=cityscapes", f"data.root={root}", f"out={tmp_path / 'coco'}"]) == 0
    coco = run_evaluation(
        compose_config(
            "evaluate",
            [
                "data=coco",
                f"data.root={tmp_path / 'coco'}",
                f"eval.predictions={tmp_path / 'cs_run' / 'predictions.json'}",
            ]
            + quiet,
            output_dir=tmp_path / "coco_run",
        )
    )
    assert 0 < cs["segm_AP"] < 1 and 0 <= cs["cityscapes_AP"] < 1
    for key in ("segm_AP", "segm_AP50", "segm_AP75", "bbox_AP", "mean_iou", "instance_f1"):
        assert coco[key] == cs[key], key
    # A COCO results list (no file names) with export_coco's ids scores the same, Cityscapes AP included.
    exported = json.loads((tmp_path / "coco" / "annotations" / "instances_val2017.json").read_text())
    ids = {im["file_name"]: im["id"] for im in exported["images"]}
    written = json.loads((tmp_path / "cs_run" / "predictions.json").read_text())
    names = {im["id"]: im["file_name"] for im in written["images"]}
    results = [
        {k: a[k] for k in ("category_id", "segmentation", "score")} | {"image_id": ids[names[a["image_id"]]]}
        for a in written["annotations"]
    ]
    (tmp_path / "results.json").write_text(json.dumps(results))
    listed = run_evaluation(
        compose_config(
            "evaluate",
            ["data=cityscapes", f"data.root={root}", f"eval.predictions={tmp_path / 'results.json'}", *quiet],
            output_dir=tmp_path / "list_run",
        )
    )
    for key in ("segm_AP", "segm_AP50", "cityscapes_AP", "cityscapes_AP50", "mean_iou", "instance_f1"):
        assert listed[key] == cs[key], key


@pytest.mark.slow
def test_smoke_training_on_the_synthetic_layout(tmp_path: Path) -> None:
    from insseg.engine.trainer import run_training

    overrides = smoke_overrides(tmp_path) + ["data=synthetic", "data.layout=cityscapes"]
    metrics = run_training(compose_config("train", overrides, output_dir=tmp_path / "run"))
    assert "segm_AP" in metrics and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "data" / "synthetic_cityscapes" / "gtFine" / "val").is_dir()
