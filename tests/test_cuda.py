"""CUDA paths (``pytest -m cuda``; `make gpu-check` runs them with the GPU benchmarks). Each is skipped without a
CUDA device. Tolerances are stated where they are used:

- AMP training step: the float16-autocast loss of one batch is within 5 % (relative) of the float32 loss on the
  same weights and the same seeded sampling, and the step leaves every weight finite.
- bf16 / fp16 evaluation: segm and bbox AP within 0.02 (absolute) of float32 on a generated held-out set, for a
  model trained there until it has learned (segm AP > 0.3).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from insseg.config import compose_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

ROOT = Path(__file__).resolve().parents[1]
AMP_LOSS_RTOL = 0.05
AMP_AP_ATOL = 0.02
DATA = [
    "data.synthetic.num_images=60",
    "data.num_test=12",
    "data.synthetic.height=96",
    "data.synthetic.width=128",
    "data.max_train_images=null",
    "data.max_eval_images=null",
    "model.min_size=128",
    "model.max_size=160",
]


def _paths(tmp: Path) -> list[str]:
    return [f"paths.data_dir={tmp / 'data'}", f"paths.log_dir={tmp / 'logs'}", f"paths.cache_dir={tmp / 'cache'}"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke model trained on the GPU (float32 steps) until it has learned: (tmp dir, checkpoint, metrics)."""
    from insseg.engine.trainer import run_training

    tmp = tmp_path_factory.mktemp("cuda_train")
    overrides = ["experiment=smoke", "device=cuda", "train.amp=false", *DATA, *_paths(tmp)]
    overrides += ["train.epochs=3", "train.lr=0.01", "train.lr_step_size=100", "train.print_freq=50"]
    metrics = run_training(compose_config("train", overrides, output_dir=tmp / "train"))
    assert metrics["segm_AP"] > 0.3, metrics
    return tmp, tmp / "train" / "checkpoints" / "last.pt", metrics


def _one_batch(tmp: Path, device: torch.device) -> tuple[list[torch.Tensor], list[dict]]:
    from insseg.data import build_dataset
    from insseg.data.dataset import collate

    cfg = compose_config("train", ["experiment=smoke", *DATA, *_paths(tmp)])
    dataset = build_dataset(cfg.data, "train")
    images, targets = collate([dataset[0], dataset[1]])
    return [i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets]


def _loss(model: torch.nn.Module, images, targets, amp: bool) -> torch.Tensor:
    torch.manual_seed(0)
    torch.cuda.manual_seed_all(0)
    with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        losses = model(images, targets)
    return sum(losses.values())


def test_amp_training_step_matches_float32(tmp_path):
    from insseg.models import build_model

    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = compose_config("train", ["experiment=smoke", *DATA, *_paths(tmp_path)])
    torch.manual_seed(0)
    model = build_model(cfg.model, ["person"], fit_to_dataset=True).to(device).train()
    images, targets = _one_batch(tmp_path, device)
    full = _loss(model, images, targets, amp=False)
    mixed = _loss(model, images, targets, amp=True)
    assert torch.isfinite(mixed)
    assert abs(mixed.item() - full.item()) <= AMP_LOSS_RTOL * full.item(), (mixed.item(), full.item())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    scaler.scale(mixed).backward()
    scaler.step(optimizer)
    scaler.update()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_evaluation_matches_float32(trained, dtype):
    from insseg.evaluation.pipeline import run_evaluation

    tmp, ckpt, _ = trained
    common = ["experiment=smoke", "device=cuda", *DATA, *_paths(tmp), f"model.weights={ckpt}", "eval.cache=false"]
    common += ["eval.save_masks=false", "eval.reports.html=false"]
    full = run_evaluation(compose_config("evaluate", common, output_dir=tmp / "fp32"))
    half = run_evaluation(
        compose_config("evaluate", [*common, "device.amp=true", f"device.amp_dtype={dtype}"], output_dir=tmp / dtype)
    )
    assert half["precision"] == dtype and full["precision"] == "float32"
    for key in ("segm_AP", "bbox_AP"):
        assert abs(half[key] - full[key]) <= AMP_AP_ATOL, (key, half[key], full[key])


def test_out_of_memory_batches_are_retried_one_image_at_a_time(trained):
    """A real CUDA out-of-memory error for batches of more than one image: every image still gets its record,
    the same as a plain one-at-a-time run; an image that does not fit alone becomes a failure."""
    from insseg.inference.loop import InferenceLoop
    from insseg.inference.sources import MemorySource
    from insseg.models import build_model

    tmp, ckpt, _ = trained
    cfg = compose_config("evaluate", ["experiment=smoke", *DATA, *_paths(tmp), f"model.weights={ckpt}"])
    model = build_model(cfg.model).cuda().eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(4)]
    forward = model.forward
    state = {"fail_alone": -1, "calls": 0}

    def greedy_forward(batch, targets=None):
        state["calls"] += 1
        if len(batch) > 1 or state["calls"] == state["fail_alone"]:
            torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # a petabyte: a genuine allocator OOM
        return forward(batch, targets)

    model.forward = greedy_forward
    device = torch.device("cuda")
    expected = list(InferenceLoop(model, MemorySource(images), device, "float32", 1))
    state["calls"] = 0
    retried = list(InferenceLoop(model, MemorySource(images), device, "float32", 4))
    assert [len(r) for r in retried] == [len(r) for r in expected]
    for a, b in zip(retried, expected):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    state["calls"], state["fail_alone"] = 0, 3  # the batch of 4 fails (call 1), then image 1 alone (call 3)
    loop = InferenceLoop(model, MemorySource(images), device, "float32", 4, skip_failures=True)
    assert len(list(loop)) == 3
    assert len(loop.failures) == 1 and "out of memory" in loop.failures[0].reason


def test_channels_last_gives_the_same_detections(trained):
    from insseg.inference.loop import InferenceLoop
    from insseg.inference.sources import MemorySource
    from insseg.models import build_model

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tmp, ckpt, _ = trained
    cfg = compose_config("evaluate", ["experiment=smoke", *DATA, *_paths(tmp), f"model.weights={ckpt}"])
    model = build_model(cfg.model).cuda().eval()
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(3)]
    device = torch.device("cuda")
    plain = list(InferenceLoop(model, MemorySource(images), device, "float32", 1))
    model = model.to(memory_format=torch.channels_last)
    assert model.backbone.body.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    last = list(InferenceLoop(model, MemorySource(images), device, "float32", 1))
    for a, b in zip(last, plain):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)


def test_training_batches_are_pinned(tmp_path):
    from insseg.data import build_dataset
    from insseg.engine.trainer import _build_loader
    from insseg.utils.distributed import DistInfo

    cfg = compose_config("train", ["experiment=smoke", "data.num_workers=0", *DATA, *_paths(tmp_path)])
    loader, _ = _build_loader(cfg, build_dataset(cfg.data, "train"), torch.device("cuda"), DistInfo())
    images, targets = next(iter(loader))
    assert all(i.is_pinned() for i in images)
    assert all(t["masks"].is_pinned() for t in targets)


def _torchrun(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(ROOT / script)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=_env(), cwd=cwd, timeout=300)


def test_one_process_nccl_ddp_train_evaluate_predict(tmp_path):
    common = ["experiment=smoke", "device=cuda", *DATA, *_paths(tmp_path)]
    train = _torchrun("train.py", [*common, f"hydra.run.dir={tmp_path / 'train'}"], tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    ckpt = tmp_path / "train" / "checkpoints" / "last.pt"
    assert ckpt.is_file()
    evaluate = _torchrun(
        "evaluate.py", [*common, f"model.weights={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}"], tmp_path
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert (tmp_path / "eval" / "metrics.json").is_file()
    images = tmp_path / "data" / "synthetic_pennfudan" / "PNGImages"
    predict = _torchrun(
        "predict.py",
        [*common, f"model.weights={ckpt}", f"input={images}", f"hydra.run.dir={tmp_path / 'predict'}"],
        tmp_path,
    )
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert (tmp_path / "predict" / "predictions.json").is_file()


def test_one_process_nccl_group_trains_with_ddp(tmp_path):
    """torchrun's one-process world skips the process group in train.py; this joins an NCCL group explicitly
    and runs the trainer's epoch loop on a DistributedDataParallel model."""
    args = [str(tmp_path / "run"), "experiment=smoke", "device=cuda", *DATA, *_paths(tmp_path)]
    proc = _torchrun("tests/ddp_nccl_step.py", args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nccl ok" in proc.stdout
