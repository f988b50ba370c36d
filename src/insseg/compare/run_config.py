"""A run dir's config, ready to rebuild its evaluation outside Hydra.

evaluate.py run dirs hold ``.hydra/config.yaml`` (the composed config, interpolations as written) and
``.hydra/hydra.yaml`` (whose ``hydra.runtime.cwd`` is the directory the run was started from: relative paths
were relative to it); runs started from Python may hold a resolved ``config.yaml`` instead. The config read
here points ``eval.predictions`` at the run's predictions.json, so evaluating it again scores exactly the
detections the run scored, and takes the current defaults for keys added to ``eval`` since the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from insseg.config import register_configs
from insseg.config.schema import DataConfig, EvalConfig
from insseg.errors import InssegError

CONFIG_FILES = (".hydra/config.yaml", "config.yaml")
NEEDED = ("predictions.json", "metrics.json")
# Path keys that a relative value makes relative to the directory the run was started from.
PATH_KEYS = ("paths.root_dir", "paths.data_dir", "paths.models_dir", "paths.log_dir", "paths.cache_dir", "data.root")


def run_files(run_dir: Path) -> Path:
    """The run's config file; an error naming what is missing when ``run_dir`` is no evaluate.py run dir."""
    if not run_dir.is_dir():
        raise InssegError(f"{run_dir}: no such directory")
    config = next((run_dir / n for n in CONFIG_FILES if (run_dir / n).is_file()), None)
    missing = [n for n in NEEDED if not (run_dir / n).is_file()]
    if config is None:
        missing.insert(0, " or ".join(CONFIG_FILES))
    if missing or config is None:
        raise InssegError(
            f"{run_dir} is not a run dir of evaluate.py: it has no {', '.join(missing)} (compare reads the run "
            "dirs evaluate.py writes; for a training run, evaluate its checkpoint: python evaluate.py "
            "model.weights=<run>/best.pt)"
        )
    return config


def _start_dir(run_dir: Path) -> Path | None:
    path = run_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return None
    try:
        cwd = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("hydra", {}).get("runtime", {}).get("cwd")
    except yaml.YAMLError:
        return None
    return Path(cwd) if cwd else None


def _with_defaults(schema: type, node: Any) -> Any:
    """``node`` over the schema's defaults (keys added since the run get theirs); ``node`` as it is when it
    no longer fits the schema."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException:
        return node


def load_run_config(run_dir: str | Path) -> DictConfig:
    """The run's config, resolved, with ``eval.predictions`` = its predictions.json and
    ``eval.coco_backend=pycocotools`` (whose per-image arrays the bootstrap reads; both backends give the same
    numbers); no report evaluator runs."""
    run_dir = Path(run_dir).resolve()
    path = run_files(run_dir)
    register_configs()  # the resolvers the config may use
    try:
        cfg = OmegaConf.load(path)
        if not isinstance(cfg, DictConfig):
            raise ValueError("the file holds a list, not a config")
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
            cfg.eval = _with_defaults(EvalConfig, cfg.eval)
            cfg.data = _with_defaults(DataConfig, cfg.data)
            cfg.eval.predictions = str(run_dir / "predictions.json")
            cfg.eval.coco_backend = "pycocotools"
            cfg.eval.reports.per_class = False  # the per-class APs are read from the rebuilt arrays
        OmegaConf.resolve(cfg)
    except (OmegaConfBaseException, ValueError, TypeError) as e:
        raise InssegError(f"{path}: cannot read the run's config: {e}".splitlines()[0]) from e
    start = _start_dir(run_dir)
    if start is not None:
        for key in PATH_KEYS:
            value = OmegaConf.select(cfg, key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                OmegaConf.update(cfg, key, str(start / value))
    return cfg


def setting(cfg: Any, key: str) -> Any:
    """The value of a dotted key (None when the config has no such key)."""
    return OmegaConf.select(cfg, key, default=None)
