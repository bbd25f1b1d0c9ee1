"""The BEVFormer detector: cameras -> image features -> BEV feature B_t -> task heads.

Data flow for a batch (``BEVDataPreprocessor`` output; docs/data_format.md, "Model inputs")::

    inputs['img'] (B, T, N_cam, 3, H, W)      T = history frames + the current one (last)
    inputs[lidar2img | lidar2global | can_bus | img_shape | prev_exists] (B, T, ...)
      -> extract_img_feat per frame           list of (B, N_cam, C, H_l, W_l)
      -> bev_encoder(frame t, prev BEV)       (B, bev_h * bev_w, C), recurrently over t
      -> B_t of the current frame              exposed by :meth:`extract_bev`
      -> heads: loss() / predict() on B_t      e.g. 3D detection, BEV segmentation

The model reads geometry only from these tensors (the data samples' metainfo serves the
evaluation, and the scene / frame identity of video test mode).

History frames are encoded without gradients and in eval mode (as in the original).
At test time with T = 1 ("video test mode") the previous BEV is carried from the last
call and used only for a sample whose previous key frame it really is (same scene,
``frame_idx`` one less); everything else starts without history. For batch size > 1
at test time, give the test dataset a queue instead: the history is then recomputed per
sample and the result does not depend on the batch composition.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import ModuleDict

from ...geometry.ego_motion import relative_pose
from ...structures import Det3DDataSample
from ..data_preprocessors.bev_data_preprocessor import GEOMETRY_KEYS
from ..heads.base_bev_head import BaseBEVHead
from .multiview_features import MultiViewFeaturesMixin

SampleList = List[Det3DDataSample]
#: One frame of the batch geometry: GEOMETRY_KEYS -> (B, ...) tensors.
Frame = Dict[str, Tensor]


@MODELS.register_module()
class BEVFormer(MultiViewFeaturesMixin, BaseDetector):
    """BEVFormer: spatio-temporal BEV encoder and task heads on its BEV feature.

    Args:
        img_backbone (dict): image backbone, e.g. mmdet ``ResNet``.
        img_neck (dict, optional): e.g. mmdet ``FPN``.
        bev_encoder (dict): ``BEVFormerEncoder`` producing B_t.
        heads (dict[str, dict]): task heads by name, each a
            :class:`~projects.bevformer.models.heads.BaseBEVHead`: its losses enter the loss
            dict as ``head.loss_prefix + key``, its predictions the data-sample field
            ``head.pred_field``.
        head_loss_weights (dict[str, float], optional): per-head (by name) multiplier of its
            losses.
        use_grid_mask (bool): GridMask on the images in training.
        grid_mask (dict): GridMask arguments.
        video_test_mode (bool): carry the previous BEV across test calls.
        perspective_head (dict, optional): a ``PerspectiveHead`` supervising the current
            frame's image features in training (its losses join the dict; not run at test
            time).
        img_channels_last (bool): images enter the backbone in NHWC memory order (CPU:
            oneDNN's native layout, measured 1.1-1.9x on the quickstart's training step; same
            values within float rounding). See ``MultiViewFeaturesMixin``.
        data_preprocessor (dict): e.g. ``BEVDataPreprocessor``.
    """

    def __init__(self,
                 img_backbone: ConfigType,
                 bev_encoder: ConfigType,
                 heads: Dict[str, ConfigType],
                 img_neck: OptConfigType = None,
                 head_loss_weights: Optional[Dict[str, float]] = None,
                 use_grid_mask: bool = True,
                 grid_mask: OptConfigType = None,
                 video_test_mode: bool = True,
                 perspective_head: OptConfigType = None,
                 img_channels_last: bool = False,
                 data_preprocessor: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.img_backbone = MODELS.build(img_backbone)
        self.img_neck = MODELS.build(img_neck) if img_neck is not None else None
        self.bev_encoder = MODELS.build(bev_encoder)
        if not heads:
            raise ValueError('BEVFormer needs at least one head in `heads`')
        # mmengine's ModuleDict, so init_weights() reaches the heads (torch's does not).
        # Heads read B_t: its grid, range and width are the encoder's, stated once there.
        bev_args = dict(bev_h=self.bev_encoder.bev_h, bev_w=self.bev_encoder.bev_w,
                        embed_dims=self.bev_encoder.embed_dims,
                        pc_range=list(self.bev_encoder.pc_range))
        self.heads = ModuleDict({name: MODELS.build(_with_bev_args(name, cfg, bev_args))
                                 for name, cfg in heads.items()})
        _check_heads(self.heads)
        self.head_loss_weights = dict(head_loss_weights or {})
        unknown = set(self.head_loss_weights) - set(self.heads)
        if unknown:
            raise KeyError(f'head_loss_weights names unknown heads {sorted(unknown)}; '
                           f'heads are {sorted(self.heads)}')
        self.grid_mask = MODELS.build(dict(type='GridMask', **(grid_mask or {}))) \
            if use_grid_mask else None
        self.video_test_mode = video_test_mode
        self.perspective_head = (MODELS.build(perspective_head)
                                 if perspective_head is not None else None)
        self.img_channels_last = img_channels_last
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self._prev: Optional[dict] = None  # state of video test mode

    # --------------------------------------------------------------------- BEV
    def _encode(self, mlvl_feats: List[Tensor], frame: Frame, pad_shape: Tuple[int, int],
                prev_bev: Optional[Tensor], prev_frame: Optional[Frame],
                prev_valid: Tensor) -> Tensor:
        """One BEV encoder step for one frame. Returns (B, bev_h * bev_w, C)."""
        if prev_bev is not None and prev_frame is not None:
            prev2cur = relative_pose(prev_frame['lidar2global'], frame['lidar2global'])
            prev_can_bus = prev_frame['can_bus']
        else:
            prev2cur = None
            prev_can_bus = torch.zeros_like(frame['can_bus'])
            prev_valid = torch.zeros_like(prev_valid)
        # float64: the encoder casts for its MLP (legacy mode derives angles from it).
        can_bus = self.bev_encoder.make_can_bus(frame['can_bus'], prev_can_bus, prev_valid)
        return self.bev_encoder(
            mlvl_feats,
            lidar2img=frame['lidar2img'],
            img_shape=frame['img_shape'],
            pad_shape=pad_shape,
            can_bus=can_bus,
            prev_bev=prev_bev,
            prev2cur=None if prev2cur is None else prev2cur.float(),
            prev_valid=prev_valid if prev_bev is not None else None)

    @staticmethod
    def _geometry(inputs: dict, imgs: Tensor) -> Dict[str, Tensor]:
        """The (B, T, ...) geometry tensors of ``inputs``, checked against the images."""
        bs, num_frames, num_cams = imgs.shape[:3]
        geo = {}
        for key, (shape, _) in GEOMETRY_KEYS.items():
            if key not in inputs:
                raise KeyError(f'BEVFormer: inputs has no {key!r}; the model reads the per-frame '
                               f'geometry from the (B, T, ...) tensors of BEVDataPreprocessor '
                               f'(docs/data_format.md)')
            want = (bs, num_frames, *(num_cams if d is None else d for d in shape))
            if tuple(inputs[key].shape) != want:
                raise ValueError(f'BEVFormer: inputs[{key!r}] must be {want}, got '
                                 f'{tuple(inputs[key].shape)}')
            geo[key] = inputs[key].to(imgs.device)
        return geo

    def extract_bev(self, inputs: dict, batch_data_samples: SampleList) -> Tensor:
        """B_t: the BEV feature of the current (last) frame, using the history frames.

        See :meth:`_extract` for the arguments; returns (B, bev_h * bev_w, C).
        """
        return self._extract(inputs, batch_data_samples)[0]

    def _extract(self, inputs: dict,
                 batch_data_samples: SampleList) -> Tuple[Tensor, List[Tensor]]:
        """B_t and the current frame's image features.

        Args:
            inputs (dict): ``img`` (B, T, N_cam, 3, H, W), T - 1 history frames then the
                current; ``lidar2img`` (B, T, N_cam, 4, 4), ``lidar2global`` (B, T, 4, 4),
                ``can_bus`` (B, T, 18), ``img_shape`` (B, T, 2), ``prev_exists`` (B, T), as
                ``BEVDataPreprocessor`` makes them.
            batch_data_samples (list[Det3DDataSample]): B samples; video test mode reads their
                ``scene_token`` and ``frame_idx``.

        Returns:
            tuple: B_t (B, bev_h * bev_w, C) and the current frame's neck outputs, per level
            (B, N_cam, C, H_l, W_l).
        """
        imgs = inputs['img']
        if imgs.dim() != 6:
            raise ValueError(f'expected imgs of shape (B, T, N_cam, 3, H, W), got {tuple(imgs.shape)}')
        bs, num_frames = imgs.shape[:2]
        geo = self._geometry(inputs, imgs)
        frames = [{k: v[:, t] for k, v in geo.items()} for t in range(num_frames)]
        pad_shape = tuple(imgs.shape[-2:])

        prev_bev, prev_frame = None, None
        if num_frames > 1:
            prev_bev, prev_frame = self._encode_history(imgs[:, :-1], frames[:-1], pad_shape)
        elif self.video_test_mode and not self.training:
            prev_bev, prev_frame = self._carried_state(bs)

        cur = frames[-1]
        prev_valid = cur['prev_exists']
        if prev_bev is not None and num_frames == 1:
            prev_valid = prev_valid & self._carried_valid(batch_data_samples, imgs.device)
        feats = self.extract_img_feat(imgs[:, -1])
        bev = self._encode(feats, cur, pad_shape, prev_bev, prev_frame, prev_valid)

        if self.video_test_mode and not self.training:
            self._prev = dict(bev=bev.detach(), frame=cur,
                              scene_tokens=[ds.metainfo.get('scene_token')
                                            for ds in batch_data_samples],
                              frame_idx=[ds.metainfo.get('frame_idx')
                                         for ds in batch_data_samples])
        return bev, feats

    def _encode_history(self, imgs: Tensor, frames: List[Frame], pad_shape: Tuple[int, int]):
        """Encode the history frames recurrently, without gradients, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                bs, num_hist = imgs.shape[:2]
                # One backbone pass over all history frames.
                feats = self.extract_img_feat(imgs.flatten(0, 1))
                feats = [f.view(bs, num_hist, *f.shape[1:]) for f in feats]
                prev_bev, prev_frame = None, None
                for t, frame in enumerate(frames):
                    bev = self._encode([f[:, t] for f in feats], frame, pad_shape, prev_bev,
                                       prev_frame, frame['prev_exists'])
                    prev_bev, prev_frame = bev, frame
        finally:
            self.train(was_training)
        return prev_bev, prev_frame

    def _carried_state(self, bs: int) -> Tuple[Optional[Tensor], Optional[Frame]]:
        if self._prev is None or self._prev['bev'].shape[0] != bs:
            return None, None
        return self._prev['bev'], self._prev['frame']

    def _carried_valid(self, batch_data_samples: SampleList, device: torch.device) -> Tensor:
        """(B,) bool: the carried BEV at position b is the previous key frame of sample b."""
        prev = self._prev
        valid = []
        for b, ds in enumerate(batch_data_samples):
            scene, idx = ds.metainfo.get('scene_token'), ds.metainfo.get('frame_idx')
            pidx = prev['frame_idx'][b]
            same_scene = scene is not None and prev['scene_tokens'][b] == scene
            consecutive = idx is not None and pidx is not None and int(pidx) == int(idx) - 1
            valid.append(same_scene and consecutive)
        return torch.tensor(valid, device=device)

    def reset_video_state(self) -> None:
        """Forget the carried previous BEV (called automatically on a scene change)."""
        self._prev = None

    # ------------------------------------------------------------------- API
    def extract_feat(self, batch_inputs: dict,
                     batch_data_samples: SampleList = None) -> Tensor:
        """B_t of a batch (see :meth:`extract_bev`).

        Args:
            batch_inputs (dict): images and per-frame geometry from ``BEVDataPreprocessor``.
            batch_data_samples (list[Det3DDataSample]): B samples.

        Returns:
            Tensor: (B, bev_h * bev_w, C).
        """
        return self.extract_bev(self._inputs(batch_inputs), batch_data_samples)

    @staticmethod
    def _inputs(batch_inputs: dict) -> dict:
        if not isinstance(batch_inputs, dict) or 'img' not in batch_inputs:
            raise TypeError('BEVFormer: batch_inputs must be the dict of BEVDataPreprocessor '
                            f'(img and the per-frame geometry), got {type(batch_inputs).__name__}')
        return batch_inputs

    def loss(self, batch_inputs: dict, batch_data_samples: SampleList) -> dict:
        """Losses of every head on B_t.

        Args:
            batch_inputs (dict): ``img`` (B, T, N_cam, 3, H, W), T - 1 history frames (encoded
                without gradients) then the current frame, and the per-frame geometry
                (:meth:`extract_bev`).
            batch_data_samples (list[Det3DDataSample]): B samples with metainfo and each
                head's ground truth.

        Returns:
            dict[str, Tensor]: each head's losses under ``head.loss_prefix + key``, scaled by
            ``head_loss_weights[name]``.
        """
        inputs = self._inputs(batch_inputs)
        bev, feats = self._extract(inputs, batch_data_samples)
        losses = {}
        if self.perspective_head is not None:
            losses.update(self.perspective_head.loss(
                feats, inputs['lidar2img'][:, -1], inputs['img_shape'][:, -1],
                tuple(inputs['img'].shape[-2:]), batch_data_samples))
        for name, head in self.heads.items():
            weight = self.head_loss_weights.get(name, 1.0)
            for key, value in head.loss(bev, batch_data_samples).items():
                if weight != 1.0 and 'loss' in key:
                    value = [v * weight for v in value] if isinstance(value, list) else value * weight
                losses[head.loss_prefix + key] = value
        return losses

    def predict(self, batch_inputs: dict, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predictions of every head, stored in the data samples.

        Args:
            batch_inputs (dict): images and geometry as for :meth:`loss`; with T = 1 and
                ``video_test_mode`` the previous BEV is carried from the last call.
            batch_data_samples (list[Det3DDataSample]): B samples with metainfo.
            rescale (bool): unused (boxes are in metres in the LiDAR frame).

        Returns:
            list[Det3DDataSample]: the same samples, each head's result in ``head.pred_field``
            (the detection head's ``pred_instances_3d``: ``bboxes_3d`` (M, 9), ``scores_3d``,
            ``labels_3d``).
        """
        bev = self.extract_bev(self._inputs(batch_inputs), batch_data_samples)
        for head in self.heads.values():
            for ds, res in zip(batch_data_samples, head.predict(bev, batch_data_samples)):
                setattr(ds, head.pred_field, res)
        return batch_data_samples

    def _forward(self, batch_inputs: dict, batch_data_samples: SampleList = None):
        """Raw head outputs by head name (no post-processing)."""
        bev = self.extract_bev(self._inputs(batch_inputs), batch_data_samples)
        return {name: head(bev) for name, head in self.heads.items()}


def _with_bev_args(name: str, cfg: ConfigType, bev_args: dict) -> dict:
    """A head config with the encoder's BEV arguments filled in; a conflicting one is named."""
    cfg = dict(cfg)
    head_type = cfg.get('type')
    head_cls = MODELS.get(head_type) if isinstance(head_type, str) else head_type
    if not (isinstance(head_cls, type) and issubclass(head_cls, BaseBEVHead)):
        raise TypeError(f'BEVFormer: head {name!r} ({head_type}) must subclass BaseBEVHead '
                        f'(projects/bevformer/models/heads/base_bev_head.py)')
    for key, value in bev_args.items():
        if key in cfg and cfg[key] is not None:
            given = [float(v) for v in cfg[key]] if key == 'pc_range' else cfg[key]
            want = [float(v) for v in value] if key == 'pc_range' else value
            if given != want:
                raise ValueError(f'BEVFormer: heads.{name}.{key} = {cfg[key]} differs from the '
                                 f'BEV encoder\'s {value}; state it once, on bev_encoder')
        cfg[key] = value
    return cfg


def _check_heads(heads: ModuleDict) -> None:
    """Loss prefixes and prediction fields are unique across heads."""
    for attr in ('loss_prefix', 'pred_field'):
        seen: Dict[str, str] = {}
        for name, head in heads.items():
            value = getattr(head, attr)
            if value in seen:
                raise ValueError(f'BEVFormer: heads {seen[value]!r} and {name!r} share the '
                                 f'{attr} {value!r}; set loss_prefix / use distinct heads')
            seen[value] = name
