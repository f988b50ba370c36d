"""Structured configs: the typed schema behind conf/*.yaml.

Hydra checks every override against these dataclasses, so a typo (``train.lrr=0.1``) or a wrong type
(``train.epochs=ten``) fails with the full key before any work starts. Ranges and choices that types cannot
express are checked by :func:`insseg.config.validate.validate_config`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from insseg.utils.slurm import slurm_run_id


@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    models_dir: str = "${paths.root_dir}/models"
    log_dir: str = "${paths.root_dir}/outputs"
    cache_dir: str = "${paths.root_dir}/outputs/cache"
    # Filled from Hydra's run dir at start-up; every artefact of a run goes below it.
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class SyntheticConfig:
    """How ``data=synthetic`` generates its dataset when the root does not exist yet."""

    num_images: int = 24
    height: int = 160
    width: int = 224
    max_objects: int = 3
    seed: int = 0


@dataclass
class DataConfig:
    name: str = "synthetic"  # pennfudan | voc | coco | lvis | cityscapes | synthetic
    # Which reader: pennfudan (PNGImages/ + PedMasks/), voc (VOC2012 layout), coco (COCO-format JSON + images),
    # lvis (an LVIS v1 JSON + the COCO 2017 image folders; scored with the LVIS protocol) or cityscapes
    # (leftImg8bit/ + gtFine/; scored with cityscapesScripts' AP beside COCO AP).
    layout: str = "pennfudan"
    root: str = "${paths.data_dir}/synthetic"
    # Missing root: download (pennfudan), generate (synthetic) or fail with instructions (voc).
    download: bool = True
    url: str | None = None
    sha256: str | None = None
    # PennFudanPed has no official split: a seeded permutation holds out ``num_test`` images.
    num_test: int = 50
    split_seed: int = 0
    # VOC: ImageSets/Segmentation/<name>.txt; Cityscapes: leftImg8bit/<name>/ (train | val | test)
    train_split: str = "train"
    eval_split: str = "val"
    # COCO layout: instance JSON and the folder its file_names are relative to, per split (relative to root,
    # or absolute). Defaults: the COCO 2017 layout.
    train_json: str = "annotations/instances_train2017.json"
    train_images: str = "train2017"
    eval_json: str = "annotations/instances_val2017.json"
    eval_images: str = "val2017"
    # Repeat-factor sampling for training (the LVIS recipe; COCO-format data only): an image is drawn
    # max(1, sqrt(t / f)) times per epoch for its rarest category's image fraction f. data=lvis: 0.001; null = off.
    repeat_factor_threshold: float | None = None
    # Detections per image the dataset's protocol scores (COCO 100, LVIS 300); model.detections_per_img of
    # model=maskrcnn follows it (RefineMask's checkpoints carry their own: 300 for the LVIS ones).
    detections_per_img: int = 100
    # Caps for quick runs (experiment=smoke); null = all images.
    max_train_images: int | None = None
    max_eval_images: int | None = None
    num_workers: int = 2
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ModelConfig:
    """What every model config has; each ``model=`` option extends it with only the keys its builder reads."""

    name: str = MISSING
    # DEFAULT: pretrained COCO weights from the torch cache; null: random init; or a path to a checkpoint.
    weights: str | None = None


@dataclass
class MaskRCNNConfig(ModelConfig):
    """torchvision Mask R-CNN ResNet-FPN (``model=maskrcnn``)."""

    name: str = "maskrcnn"
    weights: str | None = "DEFAULT"
    # Backbone ImageNet weights when model.weights is null: DEFAULT | null.
    backbone_weights: str | None = None
    backbone: str = "resnet50"  # resnet50 | resnet18 (a small model for smoke runs)
    trainable_backbone_layers: int = 3
    min_size: int = 800
    max_size: int = 1333
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_img: int = 100
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 2000
    # RoIs sampled per image for the box head during training.
    box_batch_size_per_image: int = 512


@dataclass
class RefineMaskConfig(ModelConfig):
    """RefineMask R50/R101-FPN in plain PyTorch (``model=refinemask``), loading the official mmdet checkpoints.

    The architecture (depth, classes) and the test settings come from the checkpoint; each key left null here
    follows it (the official r50-coco values without a checkpoint)."""

    name: str = "refinemask"
    # A released checkpoint (insseg.models.refinemask.zoo.VARIANTS): names the default file and its download
    # link: r50-coco-1x | r50-coco-2x | r101-coco-1x | r101-coco-2x | lvis-r50-1x | lvis-r101-1x | cityscapes-r50
    variant: str = "r50-coco-2x"
    weights: str | None = "${paths.models_dir}/${.variant}.pth"
    # ImageNet weights for the ResNet when model.weights is null: DEFAULT | null.
    backbone_weights: str | None = None
    # ResNet depth 50 | 101; null: the checkpoint's (50 without one). A value the checkpoint contradicts is an error.
    depth: int | None = None
    # mmdet's test scale (long side max_size, short side min_size); null: the checkpoint config's.
    min_size: int | None = None
    max_size: int | None = None
    # null: the checkpoint config's test_cfg (score_thr, max_per_img).
    box_score_thresh: float | None = None
    detections_per_img: int | None = None
    # RCNN box loss for training, l1 | smooth_l1; null: the checkpoint config's (l1 without one).
    bbox_loss: str | None = None


@dataclass
class DeviceConfig:
    type: str = "auto"  # auto | cpu | cuda
    # Evaluation and prediction: autocast on CUDA (ignored on CPU). Off = exact float32, the default.
    # Training has its own switch, train.amp.
    amp: bool = False
    amp_dtype: str = "float16"  # float16 | bfloat16
    # CPU threads; null = all cores.
    num_threads: int | None = None
    cudnn_benchmark: bool = False
    # TF32 matmuls on Ampere+; keep off when checking numerical parity.
    allow_tf32: bool = False


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 2
    # The rate for a total batch of 2 images (the tutorial's); scaled linearly with processes x batch_size
    # unless scale_lr is false (torchvision's reference: 0.02 for 8 GPUs x 2 images).
    lr: float = 0.005
    scale_lr: bool = True
    momentum: float = 0.9
    weight_decay: float = 0.0005
    # step (x lr_gamma every lr_step_size epochs) | multistep (x lr_gamma at each epoch in lr_milestones)
    # | cosine (to 0 over all iterations). Every schedule starts with the warm-up below.
    lr_schedule: str = "step"
    lr_step_size: int = 3
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    # Linear warm-up over the first min(warmup_iters, iterations per epoch) iterations of epoch 0.
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    hflip_prob: float = 0.5
    # Mixed precision (autocast + GradScaler) for the training step on CUDA; ignored on CPU.
    amp: bool = True
    # null | path to a checkpoint | auto (newest last.pt of the same experiment).
    resume: str | None = None
    # Evaluate (COCO AP on the eval split) every N epochs and after the last one.
    eval_every: int = 1
    # Stop when segm AP has not improved for this many evaluations (null: never); best.pt keeps the best.
    early_stopping: int | None = None
    print_freq: int = 10
    num_overlays: int = 4
    clip_grad_norm: float | None = None


@dataclass
class ReportsConfig:
    """The pictures and tables evaluate.py writes besides the numbers (docs/evaluation.md, *Reports*)."""

    per_class: bool = True  # metrics.json per_class, a metrics.xlsx sheet, a table in the log
    pr_curves: bool = True  # pr_curves/
    confusion: bool = True  # confusion_matrix.png and a metrics.xlsx sheet
    gallery: int = 8  # images in each gallery group (worst mean IoU, random); 0 = no gallery
    gallery_seed: int = 0
    html: bool = True  # report.html


@dataclass
class EvalConfig:
    # Matching metrics use predictions with score strictly above this; COCO AP uses every prediction.
    score_threshold: float = 0.5
    save_masks: bool = True
    # Path to a predictions.json to evaluate without running a model.
    predictions: str | None = None
    # How a predictions file's entries are checked (insseg.predictions_check): strict refuses a NaN score, a box
    # outside its image, an RLE not of its image's size...; lenient scores such a file with one warning per kind.
    predictions_check: str = "strict"
    void_as_background: bool = False
    class_aware_matching: bool = False
    keep_unmapped: bool = False
    # Reuse raw predictions across jobs of a sweep (keyed by weights, model config, dataset, split).
    cache: bool = True
    batch_size: int = 1
    warmup_iters: int = 2
    split: str | None = None  # null = the dataset's evaluation split
    # COCO AP implementation: pycocotools | faster_coco_eval (docs/evaluation.md). A literal, so that the config
    # does not import the evaluation package; tests/test_coco_backend.py checks it against coco_backend's.
    coco_backend: str = "pycocotools"
    # Boundary AP, per-class boundary AP and per-object boundary IoU / F1 (docs/evaluation.md). Either a bool
    # (eval.boundary=false turns them off) or {enabled, dilation_ratio} (eval.boundary.dilation_ratio=0.01: the
    # boundary band's width as a fraction of the image diagonal); read through config.eval_boundary.
    boundary: Any = field(default_factory=lambda: {"enabled": True, "dilation_ratio": 0.02})
    reports: ReportsConfig = field(default_factory=ReportsConfig)


@dataclass
class PredictConfig:
    input: str | None = None
    score_threshold: float = 0.5
    # null: 4 on CUDA, 1 on CPU.
    batch_size: int | None = None
    save_overlays: bool = True
    save_masks: bool = True
    warmup_iters: int = 1
    # contact_sheet.html: every overlay on one page (needs save_overlays).
    report: bool = False


@dataclass
class LoggerConfig:
    """Where training reports go (``logger=tensorboard|csv``); see insseg.engine.loggers.factory."""

    name: str = "tensorboard"  # tensorboard | mlflow | csv


@dataclass
class MLflowLoggerConfig(LoggerConfig):
    """``logger=mlflow``: a local store (SQLite + artefact folder) under ``store_dir``, or a server."""

    name: str = "mlflow"
    store_dir: str = "${paths.log_dir}/mlflow"
    # e.g. http://localhost:5000; null = the local store in store_dir.
    tracking_uri: str | None = None
    experiment: str = "${task_name}/${experiment_name}"


@dataclass
class Config:
    task_name: str = "train"
    experiment_name: str = "${model.name}_${data.name}"
    seed: int = 42
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = MISSING
    device: DeviceConfig = field(default_factory=DeviceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    # Training only (conf/logger/); null in evaluate/predict.
    logger: Any = None
    # predict.py's `input=...` shorthand for predict.input.
    input: str | None = None
    # Free-form notes from experiment configs (not read by code).
    tags: Any = None


_RUN_ID: str | None = None


def run_id() -> str:
    """One id per launch: torchrun's rendezvous id when set (all ranks agree), else SLURM's job and step in
    the tasks of a multi-task srun step (insseg.utils.slurm), else the start time."""
    global _RUN_ID
    if _RUN_ID is None:
        elastic = os.environ.get("TORCHELASTIC_RUN_ID", "")
        fallback = slurm_run_id() or time.strftime("%Y-%m-%d_%H-%M-%S")
        _RUN_ID = elastic if elastic not in ("", "none") else fallback
    return _RUN_ID


def register_configs() -> None:
    """Register the schema so conf/*.yaml can extend it (``defaults: [config_schema, ...]``)."""
    if not OmegaConf.has_resolver("insseg_run_id"):
        OmegaConf.register_new_resolver("insseg_run_id", run_id, use_cache=True)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="model", name="maskrcnn_schema", node=MaskRCNNConfig)
    cs.store(group="model", name="refinemask_schema", node=RefineMaskConfig)
    cs.store(group="device", name="schema", node=DeviceConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)
    cs.store(group="logger", name="mlflow_schema", node=MLflowLoggerConfig)
