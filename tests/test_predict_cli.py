"""run_prediction(cfg) and the real `python predict.py`: folder and glob inputs, per-image outputs, predictions.json
(read back by pycocotools), failures.txt and the exit status."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_MODEL
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from insseg.config import compose_config
from insseg.errors import ConfigError
from insseg.inference.predict_pipeline import output_stems, relative_names, run_prediction

REPO = Path(__file__).resolve().parents[1]
# pycocotools calls np.array(copy=False) on its own objects under numpy 2; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
SMALL = [
    *SMALL_MODEL,
    "seed=0",
    # Random heads score around 0.5: a low threshold makes sure the checks below see instances.
    "predict.score_threshold=0.1",
]


def write_inputs(folder: Path) -> None:
    """a.png and a.jpg share a stem; gray.png is grayscale; bad.jpg is text; notes.txt is not an image."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (72, 56, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 90), dtype=np.uint8)).save(folder / "gray.png")
    (folder / "bad.jpg").write_text("this is not a JPEG")
    (folder / "notes.txt").write_text("ignored: no image suffix")


def check_run(
    out: Path, sizes: dict[str, tuple[int, int]], stems: dict[str, str], threshold: float, classes: tuple = ("person",)
) -> dict:
    """Every readable input has its overlay, its masks match predictions.json, and pycocotools reads it."""
    data = json.loads((out / "predictions.json").read_text())
    assert set(data) == {"info", "images", "annotations", "categories"}
    assert data["info"]["score_threshold"] == threshold and data["info"]["precision"] == "float32"
    assert [c["name"] for c in data["categories"]] == list(classes)
    assert {im["file_name"]: (im["height"], im["width"]) for im in data["images"]} == sizes
    # The images and categories tables make the ground-truth side; the annotations load as results.
    coco = COCO()
    coco.dataset = {"images": data["images"], "categories": data["categories"], "annotations": []}
    coco.createIndex()
    results = coco.loadRes(copy.deepcopy(data["annotations"])) if data["annotations"] else None
    for im in data["images"]:
        stem = stems[im["file_name"]]
        h, w = sizes[im["file_name"]]
        assert Image.open(out / "overlays" / f"{stem}.png").size == (w, h)
        anns = [a for a in data["annotations"] if a["image_id"] == im["id"]]
        assert [a["score"] for a in anns] == sorted((a["score"] for a in anns), reverse=True)
        assert all(a["score"] > threshold for a in anns)
        pattern = re.compile(re.escape(Path(stem).name) + r"_\d+\.png")
        written = [p for p in (out / "masks" / Path(stem).parent).glob("*.png") if pattern.fullmatch(p.name)]
        assert len(written) == len(anns)
        for k, ann in enumerate(anns):
            x, y, bw, bh = ann["bbox"]
            assert 0 <= x <= x + bw <= w + 1e-3 and 0 <= y <= y + bh <= h + 1e-3
            png = np.asarray(Image.open(out / "masks" / f"{stem}_{k}.png"))
            assert png.shape == (h, w) and set(np.unique(png).tolist()) <= {0, 255}
            rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
            assert np.array_equal(mask_utils.decode(rle).astype(bool), png == 255)
    if results is not None:
        assert len(results.getAnnIds()) == len(data["annotations"])
    return data


def test_folder_input_in_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_inputs(tmp_path / "in")
    cfg = compose_config(
        "predict", SMALL + [f"input={tmp_path / 'in'}", "predict.report=true"], output_dir=tmp_path / "out"
    )
    caplog.set_level("INFO", logger="insseg")
    result = run_prediction(cfg)
    messages = list(caplog.messages)
    out = tmp_path / "out"
    assert result["num_images"] == 3 and result["num_failed"] == 1
    assert result["num_instances"] > 0
    # Shared stems use the full file name; the others keep their stem.
    assert result["outputs"] == {"a.jpg": "a.jpg", "a.png": "a.png", "bad.jpg": "bad", "gray.png": "gray"}
    data = check_run(out, {"a.jpg": (72, 56), "a.png": (60, 80), "gray.png": (40, 90)}, result["outputs"], 0.1)
    assert len(data["annotations"]) == result["num_instances"]
    # predict.report=true: one offline page of the overlays, each linked relative to it.
    sheet = (out / "contact_sheet.html").read_text()
    linked = re.findall(r'src="([^"]+)"', sheet)
    assert sorted(linked) == sorted(f"overlays/{s}.png" for s in ("a.jpg", "a.png", "gray"))
    assert all((out / link).is_file() for link in linked) and "http" not in sheet
    lines = (out / "failures.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'in' / 'bad.jpg'}\t")
    assert any("notes.txt" in m for m in messages)  # the skipped non-image is mentioned, not silently dropped
    assert any("bad.jpg" in m and "not an image" in m for m in messages)
    closing = messages[-1]
    assert closing.startswith("done: 3 image(s)") and "1 unreadable" in closing
    for stage in ("data", "model", "postprocess", "write", "images/s", "warm-up"):
        assert stage in closing
    timing = result["timing"]  # predict.warmup_iters=1, batch 1: the first readable image is warm-up
    assert timing["steady"]["warmup_images"] == 1 and timing["steady"]["images"] == 2


def test_missing_input_fails_before_building_a_model(tmp_path: Path) -> None:
    cfg = compose_config("predict", SMALL, output_dir=tmp_path / "out")
    with pytest.raises(ConfigError, match="no input given"):
        run_prediction(cfg)
    cfg = compose_config("predict", SMALL + [f"input={tmp_path}/*.png"], output_dir=tmp_path / "out")
    with pytest.raises(ConfigError, match="matches no files"):
        run_prediction(cfg)


def test_output_names() -> None:
    root = Path("/data")
    paths = [Path(p) for p in ["/data/x/a.png", "/data/y/a.png", "/data/b.PNG", "/data/B.jpg", "/elsewhere/c.png"]]
    names = relative_names(paths, root)
    assert names == ["x/a.png", "y/a.png", "b.PNG", "B.jpg", "c.png"]
    # Same stem in different sub-folders is no clash; b.PNG and B.jpg clash case-insensitively.
    assert output_stems(names) == ["x/a", "y/a", "b.PNG", "B.jpg", "c"]
    # A clash left after using full names is numbered.
    assert output_stems(["a.jpg", "a.png", "a.jpg.png"]) == ["a.jpg", "a.png", "a.jpg~2"]


def test_real_cli_with_glob_and_failure(tmp_path: Path) -> None:
    """`python predict.py` on a recursive glob: sub-folders mirrored, the unreadable file listed, exit 1."""
    rng = np.random.default_rng(1)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (50, 64, 3), dtype=np.uint8)).save(tmp_path / "in" / "top.png")
    Image.fromarray(rng.integers(0, 256, (48, 48, 4), dtype=np.uint8)).save(tmp_path / "in" / "sub" / "rgba.png")
    (tmp_path / "in" / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "in" / "skipped.jpg")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "predict.py", *SMALL, f"input={tmp_path / 'in'}/**/*.png", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "broken.png" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert "done: 2 image(s)" in proc.stdout.strip().splitlines()[-1]
    assert "done: 2 image(s)" in (run_dir / "predict.log").read_text()  # Hydra's run log keeps the summary
    stems = {"top.png": "top", "sub/rgba.png": "sub/rgba"}
    check_run(run_dir, {"top.png": (50, 64), "sub/rgba.png": (48, 48)}, stems, 0.1)
    assert (run_dir / "overlays" / "sub" / "rgba.png").is_file()
    assert not (run_dir / "overlays" / "skipped.png").exists()
    assert "sub/broken.png" in (run_dir / "failures.txt").read_text()
    assert (run_dir / ".hydra" / "config.yaml").is_file()


class _FussyStub(torch.nn.Module):
    """One 'thing' per image; runs out of memory on any batch holding an image taller than 50 px."""

    class_names = ["thing"]

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls.append(len(images))
        if any(im.shape[-2] > 50 for im in images):
            raise MemoryError
        outs = []
        for im in images:
            h, w = im.shape[-2:]
            masks = torch.zeros(1, 1, h, w)
            masks[..., : h // 2, : w // 2] = 1.0
            outs.append(
                {
                    "boxes": torch.tensor([[0.0, 0.0, w / 2, h / 2]]),
                    "labels": torch.tensor([1]),
                    "scores": torch.tensor([0.8]),
                    "masks": masks,
                }
            )
        return outs


def test_out_of_memory_retries_alone_then_lists_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from insseg.inference import predict_pipeline

    (tmp_path / "in").mkdir()
    for name, h in [("a.png", 30), ("b.png", 80), ("c.png", 40)]:
        Image.fromarray(np.full((h, 40, 3), 100, np.uint8)).save(tmp_path / "in" / name)
    stub = _FussyStub()
    monkeypatch.setattr(
        predict_pipeline.Segmenter,
        "from_config",
        classmethod(lambda cls, cfg, **kw: cls(stub, device="cpu", score_threshold=0.5, batch_size=3)),
    )
    cfg = compose_config(
        "predict", SMALL + [f"input={tmp_path / 'in'}", "predict.warmup_iters=0"], output_dir=tmp_path / "out"
    )
    result = predict_pipeline.run_prediction(cfg)
    assert stub.calls == [3, 1, 1, 1]  # the batch, then each image alone
    assert result["num_images"] == 2 and result["num_failed"] == 1 and result["num_instances"] == 2
    assert "b.png" in result["failures"][0][0] and "out of memory" in result["failures"][0][1]
    check_run(tmp_path / "out", {"a.png": (30, 40), "c.png": (40, 40)}, {"a.png": "a", "c.png": "c"}, 0.5, ("thing",))
