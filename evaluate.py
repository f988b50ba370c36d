"""Evaluate a model (or a predictions file) on a dataset's evaluation split.

    python evaluate.py model=maskrcnn data=pennfudan [model.weights=<ckpt>] [eval.score_threshold=0.5]
    python evaluate.py -m eval.score_threshold=0.3,0.4,0.5,0.6,0.7     # one model run, cached; sweep_summary.*

Writes predictions.json, metrics.json, metrics.xlsx and masks/ into the run dir (docs/evaluation.md).
"""

from functools import partial

import hydra
from omegaconf import DictConfig

from insseg.cli import command_line_overrides, run_entry
from insseg.config import register_configs
from insseg.evaluation.pipeline import run_evaluation
from insseg.models.checkpoint_settings import explicit_model_keys

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    metrics = run_entry(partial(run_evaluation, explicit_model_keys=explicit_model_keys(command_line_overrides())), cfg)
    # The return value is what a Hydra sweeper optimises.
    return metrics.get("segm_AP") if metrics else None


if __name__ == "__main__":
    main()
