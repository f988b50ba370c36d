"""The checkpoints released with the official RefineMask code (README of zhanggang001/RefineMask).

``model.variant`` names one of them: it sets the default file name (``models/<variant>.pth``) and the download
link shown when the file is missing. The architecture is always read from the checkpoint itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from insseg.errors import ConfigError

README = "https://github.com/zhanggang001/RefineMask"


@dataclass(frozen=True)
class Variant:
    name: str
    title: str  # the README row
    config: str  # the official config file
    url: str  # the README's download link

    @property
    def filename(self) -> str:
        return f"{self.name}.pth"


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "r50-coco-1x",
            "COCO, RefineMask R50-FPN 1x",
            "configs/refinemask/coco/r50-refinemask-1x.py",
            _drive("1ad7YewfVLJIZa_xErCW4qJBzwS4yKCnS"),
        ),
        Variant(
            "r50-coco-2x",
            "COCO, RefineMask R50-FPN 2x",
            "configs/refinemask/coco/r50-refinemask-2x.py",
            _drive("1-UuTjM9b3EfINqgGH0jyJ9uWJ3P2_wgy"),
        ),
        Variant(
            "r101-coco-1x",
            "COCO, RefineMask R101-FPN 1x",
            "configs/refinemask/coco/r101-refinemask-1x.py",
            _drive("1JcpfBzXhrSWa4MwH0LFQ575WIYxCdUyz"),
        ),
        Variant(
            "r101-coco-2x",
            "COCO, RefineMask R101-FPN 2x",
            "configs/refinemask/coco/r101-refinemask-2x.py",
            _drive("1W6jdqziYqAqiyYide9SxvHE2y79A0KJC"),
        ),
        Variant(
            "lvis-r50-1x",
            "LVIS v1, RefineMask R50-FPN 1x",
            "configs/refinemask/lvis/r50-refinemask-1x.py",
            _drive("1t10bX0S6II-PNdOP1z_hmXHs7K3fhJdv"),
        ),
        Variant(
            "lvis-r101-1x",
            "LVIS v1, RefineMask R101-FPN 1x",
            "configs/refinemask/lvis/r101-refinemask-1x.py",
            _drive("13cLKIFwlMg_QSAuXHEwISehm4PlB95eC"),
        ),
        Variant(
            "cityscapes-r50",
            "Cityscapes, RefineMask R50-FPN 1x",
            "configs/refinemask/cityscapes/r50-refinemask.py",
            _drive("1hEXRl2zqC0rUyKixU1FLoFTlNLqWvUCE"),
        ),
    )
}
DEFAULT_VARIANT = "r50-coco-2x"


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ConfigError(f"config key 'model.variant' is '{name}'; expected one of: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def missing_checkpoint_message(path: str | Path, variant: str | None = None) -> str:
    """What to download for a missing checkpoint: the variant named by the file (``<variant>.pth``), else
    ``variant``, else the default one."""
    stem = Path(path).stem
    v = VARIANTS.get(stem) or VARIANTS.get(variant or "") or VARIANTS[DEFAULT_VARIANT]
    return (
        f"RefineMask checkpoint {path} not found. Download '{v.title}' (model.variant={v.name}) from the "
        f"official README ({README}): {v.url} and save it as models/{v.filename} (or point model.weights at "
        f"the file). Released variants: {', '.join(VARIANTS)}."
    )
