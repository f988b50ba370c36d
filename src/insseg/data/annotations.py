"""Ground truth of one image as the evaluators see it: the instance-id map, not only binary masks.

Keeping the map (rather than N full-size masks) lets the matching metrics handle VOC's void band and the
background, and keeps memory flat: masks are materialised per image, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VOID_ID = 255


@dataclass
class InstanceAnnotation:
    """file_name: the image's file name in the dataset; instance_map: [H, W] ints, 0 background,
    255 void (VOC), any other value an instance id (ids need not be contiguous); instance_ids: the ids
    present, ascending; labels: class id (1-based into the dataset's class_names) of each instance."""

    file_name: str
    height: int
    width: int
    instance_map: np.ndarray
    instance_ids: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.instance_ids.shape[0])

    def masks(self) -> np.ndarray:
        """bool [N, H, W], one mask per instance id, in ``instance_ids`` order."""
        return self.instance_map[None, :, :] == self.instance_ids[:, None, None]

    def void(self) -> np.ndarray:
        """bool [H, W]: pixels that no metric counts (VOC's 255 band)."""
        return self.instance_map == VOID_ID
