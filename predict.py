"""Segment images: python predict.py model=<m> [model.weights=<ckpt>] input=<image | folder | glob>

Writes overlays/, masks/, predictions.json (and failures.txt when some inputs are unreadable) into the run
dir. Exit status: 0 when every input was segmented, 1 when some could not be read (after all the others were
done), 2 for a configuration or usage error. See docs/predict.md.
"""

import sys
from functools import partial

import hydra
from omegaconf import DictConfig

from insseg.cli import command_line_overrides, run_entry
from insseg.config import register_configs
from insseg.inference.predict_pipeline import run_prediction
from insseg.models.checkpoint_settings import explicit_model_keys

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    result = run_entry(partial(run_prediction, explicit_model_keys=explicit_model_keys(command_line_overrides())), cfg)
    if result["num_failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
