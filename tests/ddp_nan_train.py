"""Run under torchrun by test_train.py: train the smoke model where rank 1's loss turns NaN at its first
iteration. Each rank writes the error it stopped with to ``<out>/rank<N>.txt`` and exits with status 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import insseg.engine.trainer as trainer
from insseg.config import compose_config
from insseg.errors import InssegError

RANK = int(os.environ["RANK"])
build_model = trainer.build_model


def build_model_with_nan_on_rank_1(*args, **kwargs):
    model = build_model(*args, **kwargs)
    if RANK == 1:
        forward = model.forward

        def nan_forward(images, targets=None):
            out = forward(images, targets)
            if model.training:
                out["loss_mask"] = out["loss_mask"] * float("nan")
            return out

        model.forward = nan_forward
    return model


if __name__ == "__main__":
    out = Path(sys.argv[1])
    trainer.build_model = build_model_with_nan_on_rank_1
    try:
        trainer.run_training(compose_config("train", sys.argv[2:], output_dir=out / "run"))
    except InssegError as e:
        (out / f"rank{RANK}.txt").write_text(str(e))
        sys.exit(2)
