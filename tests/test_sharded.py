"""Past one process: shards cover every image once, and 2-process gloo runs of evaluate.py and predict.py
give exactly what one process gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from insseg.inference.sharding import gather_in_order, shard_indices
from insseg.utils.distributed import DistInfo

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "experiment=smoke",
    "model.weights=null",
    "device=cpu",
    "model.min_size=96",
    "model.max_size=128",
    "model.detections_per_img=5",
    "data.synthetic.num_images=12",
    "data.num_test=5",
    "data.synthetic.height=64",
    "data.synthetic.width=80",
    "data.max_eval_images=null",
    "eval.cache=false",
    "eval.save_masks=false",
]
TIMING = ("time_", "images_per_second", "timed_images", "processes", "model_run_s")


@pytest.mark.parametrize("num, world", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_shards_cover_every_image_once(num: int, world: int) -> None:
    shards = [shard_indices(num, DistInfo(rank=r, world_size=world)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(num))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_one_process_gathers_its_own_items() -> None:
    assert gather_in_order(["a", "b"], [0, 1], DistInfo()) == ["a", "b"]


def _run(tmp: Path, script: str, nproc: int, *overrides: str) -> Path:
    run_dir = tmp / f"{Path(script).stem}_{nproc}"
    launcher = (
        [sys.executable]
        if nproc == 1
        else [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    )
    cmd = [
        *launcher,
        str(REPO / script),
        *FAST,
        f"paths.data_dir={tmp / 'data'}",
        f"paths.log_dir={tmp / 'logs'}",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return run_dir


def _untimed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith(TIMING)}


def test_two_process_evaluate_and_predict_equal_one_process(tmp_path: Path) -> None:
    one = _run(tmp_path, "evaluate.py", 1)
    two = _run(tmp_path, "evaluate.py", 2)
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert m2["processes"] == 2 and m2["num_images"] == 5
    assert _untimed(m1) == _untimed(m2)
    assert json.loads((one / "predictions.json").read_text()) == json.loads((two / "predictions.json").read_text())

    images = tmp_path / "data" / "synthetic_pennfudan" / "PNGImages"
    p1 = _run(tmp_path, "predict.py", 1, f"input={images}", "predict.score_threshold=0.3")
    p2 = _run(tmp_path, "predict.py", 2, f"input={images}", "predict.score_threshold=0.3")
    d1, d2 = (json.loads((d / "predictions.json").read_text()) for d in (p1, p2))
    assert d1 == d2 and len(d2["images"]) == 12
    assert sorted(p.name for p in (p1 / "overlays").iterdir()) == sorted(p.name for p in (p2 / "overlays").iterdir())
