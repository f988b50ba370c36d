"""Train a model: ``python train.py model=maskrcnn data=pennfudan`` (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from insseg.cli import run_entry
from insseg.config import register_configs
from insseg.engine.trainer import run_training

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = run_entry(run_training, cfg)
    # The return value is what a Hydra sweeper optimises.
    return metrics.get("segm_AP") if metrics else None


if __name__ == "__main__":
    main()
