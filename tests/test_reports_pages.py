"""Gallery colours, report.html / sweep report / contact sheet links, extra xlsx sheets."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from omegaconf import OmegaConf
from openpyxl import load_workbook
from PIL import Image
from reports_cases import annotation, prediction

from insseg.config import compose_config
from insseg.evaluation.coco import CocoEvaluator, CocoMetrics
from insseg.evaluation.evaluator import Evaluators
from insseg.evaluation.excel_report import ExcelReport
from insseg.evaluation.matching import MatchingEvaluator, match_image
from insseg.evaluation.reports import build_report_evaluators, report_sheets, write_html_report
from insseg.evaluation.reports.gallery import FN_COLOR, FP_COLOR, TP_COLOR, GalleryEvaluator, render
from insseg.evaluation.sample import ImageSample, MatchSettings
from insseg.evaluation.sweep_summary import write_sweep_summary
from insseg.inference.contact_sheet import write_contact_sheet

CLASSES = ("cat", "dog")
H, W = 200, 240


def gallery_scene():
    """obj1 cat found exactly (TP); obj2 dog not predicted (missed); obj3 cat overlapped at IoU 0.2 by a cat
    prediction (obj3 missed, the prediction a false positive); a dog false positive on background."""
    gt = annotation("scene.png", H, W, [((10, 10, 70, 70), 1), ((10, 120, 70, 180), 2), ((120, 20, 180, 80), 1)])
    pred = prediction(
        "scene.png",
        H,
        W,
        [
            ((10, 10, 70, 70), 1, 0.9),
            ((120, 60, 180, 120), 1, 0.8),  # IoU with obj3: 60*20 / (3600 + 3600 - 1200) = 0.2
            ((110, 150, 190, 230), 2, 0.7),
        ],
        CLASSES,
    )
    return gt, pred


def expected(color: tuple[int, int, int], alpha: float = 0.5) -> np.ndarray:
    return np.array(color) * alpha  # over a black image


def test_gallery_colours_the_right_objects():
    gt, pred = gallery_scene()
    match = match_image(gt, pred.mask_array(), pred.labels)
    picture = render(np.zeros((H, W, 3), np.uint8), gt, pred, match, CLASSES)
    assert picture.shape == (H, W, 3) and picture.dtype == np.uint8
    checks = {
        (45, 40): TP_COLOR,  # obj1's centre: its true positive
        (45, 150): FN_COLOR,  # obj2: missed
        (150, 35): FN_COLOR,  # obj3's part the bad prediction does not cover: missed
        (150, 100): FP_COLOR,  # the bad prediction outside obj3
        (150, 200): FP_COLOR,  # the dog false positive
    }
    for (y, x), color in checks.items():
        np.testing.assert_allclose(picture[y, x], expected(color), atol=1.5, err_msg=f"pixel {(y, x)}")
    assert not picture[195, 5].any()  # background untouched


def test_gallery_labels_use_the_dataset_names_and_the_matching_iou(monkeypatch):
    gt, pred = gallery_scene()
    pred.class_names = ["model_a", "model_b"]  # the model's own names: the labels are dataset labels already
    pred.labels[2] = 0  # an unmapped class kept by eval.keep_unmapped
    seen = {}

    def capture(image, masks, boxes, labels, alpha, colors):
        seen.update(labels=labels, colors=colors)
        return image

    monkeypatch.setattr("insseg.evaluation.reports.gallery.draw_overlay", capture)
    render(np.zeros((H, W, 3), np.uint8), gt, pred, match_image(gt, pred.mask_array(), pred.labels), CLASSES)
    assert seen["labels"] == [
        "missed dog IoU 0.00",
        "missed cat IoU 0.20",
        "cat 0.80 IoU 0.20",
        "unmapped 0.70 IoU 0.00",
        "cat 0.90 IoU 1.00",
    ]
    assert seen["colors"] == [FN_COLOR, FN_COLOR, FP_COLOR, FP_COLOR, TP_COLOR]


def image_loader(names):
    calls = []

    def load(file_name: str) -> np.ndarray:
        calls.append(file_name)
        return np.full((H, W, 3), 40, np.uint8)

    return load, calls


def run_scene(tmp_path: Path, num_images: int = 6, gallery: int = 2):
    """``num_images`` copies of the scene with fewer and fewer predictions (image k keeps the first k % 4),
    through coco + matching + every report; returns (evaluators, metrics, loader calls)."""
    gt0, pred0 = gallery_scene()
    load, calls = image_loader(None)
    reports = OmegaConf.create(
        {"per_class": True, "pr_curves": True, "confusion": True, "gallery": gallery, "gallery_seed": 0}
    )
    evaluators = [CocoMetrics(), MatchingEvaluator(), *build_report_evaluators(reports, CLASSES, tmp_path, load)]
    evs = Evaluators(evaluators, MatchSettings(0.5), CocoEvaluator(CLASSES))
    for k in range(num_images):
        name = f"img{k}.png"
        gt = annotation(name, H, W, [((10, 10, 70, 70), 1), ((10, 120, 70, 180), 2), ((120, 20, 180, 80), 1)])
        pred = pred0.keep(np.arange(k % 4))
        pred.file_name = name
        evs.process(gt, pred)
    return evs, evs.evaluate(), calls


@pytest.mark.parametrize(
    "overrides, kinds",
    [
        ([], ["PerClassEvaluator", "PRCurveEvaluator", "ConfusionEvaluator", "GalleryEvaluator"]),
        (["eval.reports.per_class=false", "eval.reports.gallery=0"], ["PRCurveEvaluator", "ConfusionEvaluator"]),
        (["eval.reports.pr_curves=false", "eval.reports.confusion=false"], ["PerClassEvaluator", "GalleryEvaluator"]),
    ],
)
def test_config_switches_pick_the_report_evaluators(tmp_path, overrides, kinds):
    cfg = compose_config("evaluate", overrides, output_dir=tmp_path)
    built = build_report_evaluators(cfg.eval.reports, CLASSES, tmp_path, lambda name: None)
    assert [type(e).__name__ for e in built] == kinds
    no_loader = build_report_evaluators(cfg.eval.reports, CLASSES, tmp_path, None)
    assert "GalleryEvaluator" not in [type(e).__name__ for e in no_loader]
    no_files = build_report_evaluators(cfg.eval.reports, CLASSES, None, lambda name: None)
    assert [type(e).__name__ for e in no_files] == [k for k in kinds if k == "PerClassEvaluator"]


def test_gallery_selects_worst_and_random_and_draws_each_once(tmp_path):
    evs, metrics, calls = run_scene(tmp_path)
    gallery = evs.get(GalleryEvaluator)
    entries = json.loads((tmp_path / "gallery" / "gallery.json").read_text())
    worst = [e["image"] for e in entries if e["group"] == "worst"]
    rand = [e["image"] for e in entries if e["group"] == "random"]
    # images 0 and 4 keep no prediction (mean IoU 0); the others find obj1 (mean IoU 1/3)
    assert worst == ["img0.png", "img4.png"]
    assert len(rand) == 2 and not set(rand) & set(worst)
    assert sorted(calls) == sorted(worst + rand)  # each drawn once, nothing else loaded
    for e in entries:
        assert (tmp_path / e["file"]).is_file() and e["file"] == f"gallery/{e['group']}/{Path(e['image']).stem}.png"
    assert entries[0]["missed"] == 3 and entries[0]["true_positives"] == 0
    assert gallery.selection()["random"] == gallery.selection()["random"]  # seeded: the same every time
    # same seed, same images -> same random pick
    _, _, calls2 = run_scene(tmp_path / "again")
    assert sorted(calls2) == sorted(calls)


def test_gallery_keeps_the_lowest_mean_iou_over_a_stream():
    """30 images with mean IoUs in a shuffled order (one without objects): the 3 lowest are the worst, in
    ascending order; the random 3 are other images, the same for the same seed."""
    from insseg.evaluation.matching import ImageMatch

    rng = np.random.default_rng(1)
    ious = rng.permutation(30) / 30
    gt, pred = gallery_scene()

    def stream(seed):
        gallery = GalleryEvaluator(None, CLASSES, ".", num_images=3, seed=seed)
        for k, v in enumerate(ious):
            n = 0 if k == 7 else 1
            sample = ImageSample(gt, pred)
            sample.kept = pred
            sample.match = ImageMatch(
                f"i{k}", n, 0, np.full(n, v), np.full(n, v), np.full(n, -1), np.zeros(0, int), 1, 1
            )
            gallery.process(sample)
        return gallery.selection()

    sel = stream(0)
    lowest = [int(k) for k in np.argsort(ious) if k != 7][:3]
    assert [c.index for c in sel["worst"]] == lowest
    picked = [c.index for c in sel["random"]]
    assert len(set(picked)) == 3 and not set(picked) & set(lowest)
    assert [c.index for c in stream(0)["random"]] == picked


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]


def check_offline_page(page: Path) -> list[str]:
    """Every link of ``page`` is relative and exists (fragments aside); nothing remote, no scripts."""
    text = page.read_text(encoding="utf-8")
    parser = Links()
    parser.feed(text)
    for bad in ("@import", "url(", "<script", "<link", "<iframe", "<object"):
        assert bad not in text, f"{page.name} contains {bad!r}"
    assert {"script", "link", "iframe", "object", "embed"}.isdisjoint(parser.tags)
    files = [unquote(link) for link in parser.links if not link.startswith("#")]
    for link in files:
        assert ":" not in link and not link.startswith("/"), f"{page.name} links {link}: not a relative path"
        assert (page.parent / link).exists(), f"{page.name} links {link}, which does not exist"
    return files


def test_report_html_references_only_existing_local_files(tmp_path):
    evs, metrics, _ = run_scene(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    config = {"eval": {"score_threshold": 0.5}, "data": {"url": "https://example.org/data.zip"}}  # text, not a link
    page = write_html_report(tmp_path, metrics, config=config, title="run <1>")
    links = check_offline_page(page)
    text = page.read_text()
    for section in (
        "Per-class AP",
        "Precision-recall curves",
        "Confusion matrix",
        "Gallery",
        "Timing",
        "score_threshold: 0.5",
    ):
        assert section in text, section
    assert "run &lt;1&gt;" in text  # escaped
    assert "metrics.json" in links and "confusion_matrix.png" in links and "pr_curves/segm_per_class.png" in links
    assert sum(link.startswith("gallery/") for link in links) == 2 * 4  # 4 pictures, each an <a> and an <img>


def test_report_without_optional_files_leaves_their_sections_out(tmp_path):
    page = write_html_report(tmp_path, {"segm_AP": 0.5, "mean_iou": None})
    text = page.read_text()
    assert "Confusion matrix" not in text and "Gallery" not in text and "Per-class AP" not in text
    assert check_offline_page(page) == []


def test_training_publishes_the_best_epochs_report(tmp_path):
    from insseg.evaluation.reports.training import discard_report, publish_report

    run_dir = tmp_path / "run"
    _, first, _ = run_scene(run_dir / ".staging")
    publish_report(run_dir / ".staging", run_dir, first, epoch=0)
    assert (run_dir / "gallery" / "gallery.json").is_file() and not (run_dir / ".staging").exists()
    # a later, better epoch with the gallery off: its report must not show the earlier epoch's gallery
    _, second, _ = run_scene(run_dir / ".staging", gallery=0)
    page = publish_report(run_dir / ".staging", run_dir, second, epoch=3)
    assert not (run_dir / "gallery").exists() and (run_dir / "confusion_matrix.png").is_file()
    assert "best epoch 3" in page.read_text() and "Gallery" not in page.read_text()
    check_offline_page(page)
    (run_dir / ".staging").mkdir()
    discard_report(run_dir / ".staging")
    assert not (run_dir / ".staging").exists()


def test_excel_gets_per_class_and_confusion_sheets(tmp_path):
    evs, metrics, _ = run_scene(tmp_path, gallery=0)
    report = ExcelReport()
    report.write(tmp_path / "metrics.xlsx", metrics, {"seed": 1}, extra_sheets=report_sheets(evs, metrics))
    wb = load_workbook(tmp_path / "metrics.xlsx", read_only=True)
    assert wb.sheetnames == ["objects", "images", "summary", "config", "per_class", "confusion"]
    per_class = [list(r) for r in wb["per_class"].iter_rows(values_only=True)]
    assert per_class[0][:3] == ["class", "segm_AP", "segm_AP50"]
    assert per_class[2][0] == "dog" and per_class[2][-2:] == [6, 1]  # 6 dog objects, the FP of image 3
    confusion = [list(r) for r in wb["confusion"].iter_rows(values_only=True)]
    # 6 images keep 0,1,2,3,0,1 predictions: obj1 found 4 times; the cat FP (IoU 0.2 with obj3) twice; the dog FP once
    assert confusion[2] == ["cat", 4, 0, 8]
    assert confusion[3] == ["dog", 0, 0, 6]
    assert confusion[4] == ["background", 2, 1, 0]
    summary = [r[0] for r in wb["summary"].iter_rows(values_only=True) if r]
    assert "segm_AP" in summary and "per_class" not in summary
    wb.close()


def test_sweep_report_links_each_job_report(tmp_path):
    for job, threshold in ((0, 0.3), (1, 0.5)):
        d = tmp_path / str(job)
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(f"- eval.score_threshold={threshold}\n")
        (d / "metrics.json").write_text(json.dumps({"segm_AP": 0.4 + job / 10, "mean_iou": 0.6}))
    write_html_report(tmp_path / "0", {"segm_AP": 0.4})
    write_sweep_summary(tmp_path)
    page = tmp_path / "sweep_report.html"
    links = check_offline_page(page)
    assert "0/report.html" in links and "1/report.html" not in links  # job 1 wrote no report
    assert "sweep_summary.png" in links and "sweep_summary.xlsx" in links
    assert "eval.score_threshold" in page.read_text()


def test_contact_sheet_links_overlays_relative_to_the_page(tmp_path):
    overlays = tmp_path / "overlays"
    overlays.mkdir()
    paths = []
    for name in ("a b.png", "c#1.png"):
        Image.new("RGB", (8, 8)).save(overlays / name)
        paths.append((overlays / name, f"{name}: 2 objects"))
    page = write_contact_sheet(tmp_path / "contact_sheet.html", paths)
    links = check_offline_page(page)
    assert links == ["overlays/a b.png", "overlays/a b.png", "overlays/c#1.png", "overlays/c#1.png"]
    assert 'src="overlays/a%20b.png"' in page.read_text() and "c%231.png" in page.read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_report_renders_headless_with_no_missing_resource(tmp_path):
    """Chromium loads report.html from disk with the network off; every picture decodes (naturalWidth > 0)."""
    metrics = json.loads(json.dumps(run_scene(tmp_path)[1]))
    page = write_html_report(tmp_path, metrics)
    probe = tmp_path / "probe.html"  # the page, every picture loaded now (not lazily), plus a counter of failures
    probe.write_text(
        page.read_text()
        .replace(' loading="lazy"', "")
        .replace(
            "</body>",
            "<script>window.addEventListener('load', () => { const bad = [...document.images]"
            ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src); document.body.setAttribute("
            "'data-missing', String(bad.length)); });</script></body>",
        )
    )
    out = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 'data-missing="0"' in out.stdout, out.stderr[-2000:]
    assert out.stdout.count("<img") == 5 + 4  # 4 PR plots, the confusion matrix, 4 gallery pictures
