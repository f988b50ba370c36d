"""masks/: the matched predictions as PNGs, named as the original harness named them.

- ``{image}_object{i}_iou{iou:.4f}_f1score{f1:.4f}.png``: the prediction matched to ground-truth object i
  (counted from 0, in instance-id order, as the harness's ``object index``), 0/255; ``{image}`` is the stem;
- ``{image}_predict.png``: a palette instance-id map of the predictions above the threshold: a matched
  prediction takes its object's index + 1 (so it lines up with the ground truth's order; 0 is background),
  unmatched ones follow (N + 1, ...); higher scores are painted last, so they win where predictions overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from insseg.data.voc_palette import voc_palette
from insseg.evaluation.matching import ImageMatch
from insseg.evaluation.sample import ImageSample


def export_masks(
    out_dir: str | Path, image_name: str, match: ImageMatch, pred_masks: np.ndarray, scores: np.ndarray
) -> list[Path]:
    """Write the PNGs of one image into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(image_name).stem
    written = []
    for k in range(match.num_objects):
        j = int(match.matched[k])
        if j < 0:
            continue
        path = out_dir / f"{stem}_object{k}_iou{match.iou[k]:.4f}_f1score{match.f1[k]:.4f}.png"
        Image.fromarray(pred_masks[j].astype(np.uint8) * 255).save(path)
        written.append(path)
    h, w = pred_masks.shape[1:] if pred_masks.ndim == 3 else (0, 0)
    ids = np.zeros(len(scores), np.int64)
    next_id = match.num_objects + 1
    for j in range(len(scores)):
        if match.pred_matched[j] >= 0:
            ids[j] = match.pred_matched[j] + 1
        else:
            ids[j] = next_id
            next_id += 1
    canvas = np.zeros((h, w), np.uint8)
    for j in np.argsort(scores, kind="stable"):
        canvas[pred_masks[j]] = min(int(ids[j]), 254)
    im = Image.fromarray(canvas, mode="P")
    im.putpalette(voc_palette())
    path = out_dir / f"{stem}_predict.png"
    im.save(path)
    written.append(path)
    return written


class MaskExporter:
    """Evaluator writing each image's matched masks (see the module docstring) into ``out_dir``."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    def reset(self) -> None:
        pass

    def process(self, sample: ImageSample) -> None:
        export_masks(self.out_dir, sample.gt.file_name, sample.match, sample.kept_masks, sample.kept.scores)

    def evaluate(self, coco: object = None) -> dict[str, int]:
        return {}
