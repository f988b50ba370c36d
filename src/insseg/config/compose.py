"""Compose the project's Hydra config from Python (tests, notebooks) without running an entry script."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from insseg.config.schema import register_configs

# The repo's conf/ folder (the package is used from a checkout: `pip install -e .`).
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def compose_config(
    config_name: str = "train",
    overrides: Sequence[str] = (),
    output_dir: str | os.PathLike | None = None,
) -> DictConfig:
    """The composed, validated config of an entry script (``train``, ``evaluate`` or ``predict``).

    ``output_dir`` replaces Hydra's run dir (``paths.output_dir``), which only exists inside a Hydra run.
    """
    from insseg.config.validate import validate_config

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir) if output_dir is not None else "${paths.log_dir}/adhoc"
    OmegaConf.resolve(cfg)
    validate_config(cfg)
    return cfg
