"""The original BEVFormer's arithmetic, reproduced on demand: every quirk in one place.

Our default mode computes what BEVFormer means (exact ego-motion alignment of the previous
BEV, per-sample indexing, can_bus as documented). Official BEVFormer v1 checkpoints
(fundamentalvision/BEVFormer at 2c889a3) were trained with the original's arithmetic, which
differs in the ways listed below. ``legacy=dict()`` on :class:`BEVFormerEncoder` and on
:class:`BEVFormerHead` switches all of them on (each can be turned off by name); the
``configs/bevformer/official/`` configs do that. Legacy mode stays correct for any batch size:
the original's bs = 1 assumptions (TSA ``value[:bs]``, the SCA query selection of sample 0,
``img.squeeze_()``) are not reproduced.

Encoder (``BEVFormerEncoder(legacy=dict(...))``):

- ``rotate_prev_bev``: the previous BEV is rotated as an image by the can_bus yaw delta
  (``can_bus[17]``, degrees) about the pixel ``rotate_center`` with nearest sampling and zero
  fill (torchvision's ``rotate``), instead of being resampled bilinearly by the exact relative
  pose about the ego position. On the official 200x200 BEV, [100, 100] is the centre; on 50x50
  (tiny) it is far outside the map, so a 3 deg turn moves content by 5.6 cells on average.
- ``rotate_center``: that pixel (column, row). Default (100, 100).
- ``use_shift``: the temporal self-attention reference points are shifted by the can_bus
  translation (:func:`~projects.bevformer.geometry.ego_motion.can_bus_bev_shift`).
- ``shift_current_queue``: v1's in-place ``shift_ref_2d += shift`` also shifts the reference
  points of the current-frame queue member ("bug kept for reproducing our results in paper");
  set False for the repository head's fix (``ref_2d.clone()``).
- ``tsa_value_from_initial_query``: when a previous BEV exists, the current-frame member of the
  TSA value is the *initial* BEV query (learned embedding + can_bus MLP) in every encoder layer,
  not the layer's input.
- ``can_bus_orientation_w``: ``can_bus[3:7] = Quaternion(...)`` in the original's dataset stores
  ``float(q)`` = w in all four slots; the can_bus MLP sees (w, w, w, w).
- ``can_bus_unwrapped_yaw``: the yaw delta ``can_bus[17]`` is ``cur - prev`` in [0, 360)
  degrees, not wrapped to [-180, 180) (differs only when the heading crosses 0).
- ``pillar_mask_padded_shape``: a pillar point is visible in a camera when it projects inside
  the *padded* image (the original's ``img_shape`` is the padded shape), so points in the
  padding rows are sampled too.

Head (``BEVFormerHead(legacy=dict(...))``):

- ``drop_nonfinite_rows``: a matched query whose regression target has any non-finite entry
  (a ground-truth box with unknown velocity) loses its whole L1 row (centre, size and yaw too),
  yet still counts in the normaliser; our default drops only the non-finite entries.

Not reproduced, on purpose (no effect on finite outputs, or hides errors): the in-place rotation
of the carried previous BEV, ``torch.nan_to_num`` on the losses (a NaN loss silently became 0),
mmdet 2.14's loss reduction without the ``+ eps`` of mmdet 3 (1e-7 relative), and the bs = 1
assumptions above.
"""
import dataclasses
from typing import Optional, Tuple, Type, TypeVar

T = TypeVar('T')


def _build(cls: Type[T], cfg: Optional[dict], owner: str) -> Optional[T]:
    """None -> None (exact mode); a dict -> the dataclass with every quirk on unless named."""
    if cfg is None:
        return None
    if isinstance(cfg, cls):
        return cfg
    if not isinstance(cfg, dict):
        raise TypeError(f'{owner}: legacy must be None or a dict, got {type(cfg).__name__}')
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - names)
    if unknown:
        raise KeyError(f'{owner}: unknown legacy option(s) {unknown}; known: {sorted(names)} '
                       f'(see projects/bevformer/models/legacy.py)')
    return cls(**cfg)


@dataclasses.dataclass(frozen=True)
class EncoderLegacy:
    """The original BEVFormer encoder's quirks (see the module docstring for each)."""

    rotate_prev_bev: bool = True
    rotate_center: Tuple[float, float] = (100.0, 100.0)
    use_shift: bool = True
    shift_current_queue: bool = True
    tsa_value_from_initial_query: bool = True
    can_bus_orientation_w: bool = True
    can_bus_unwrapped_yaw: bool = True
    pillar_mask_padded_shape: bool = True

    def __post_init__(self) -> None:
        if len(self.rotate_center) != 2:
            raise ValueError(f'EncoderLegacy: rotate_center must be (column, row), got '
                             f'{self.rotate_center}')

    @classmethod
    def build(cls, cfg: Optional[dict]) -> Optional['EncoderLegacy']:
        return _build(cls, cfg, 'BEVFormerEncoder')


@dataclasses.dataclass(frozen=True)
class HeadLegacy:
    """The original BEVFormer head's loss quirks (see the module docstring)."""

    drop_nonfinite_rows: bool = True

    @classmethod
    def build(cls, cfg: Optional[dict]) -> Optional['HeadLegacy']:
        return _build(cls, cfg, 'BEVFormerHead')
