"""Run a trained BEVFormer on your own frames: ``init_model`` and ``BEVFormerInferencer``.

A *frame* is a dict (or a JSON file holding one) describing six synchronised images and the
rig's calibration; nothing else of nuScenes is needed::

    {
      "scene": "drive-01",                  # optional: frames of one scene share history
      "timestamp": 1533151603.5,            # optional, seconds
      "ego2global": [[...4x4...]],          # ego pose in a fixed world frame (for history)
      "lidar2ego": [[...4x4...]],           # optional (identity): the frame boxes are given in
      "can_bus": [...18 values...],         # optional: derived from ego2global when absent
      "cameras": {                          # every camera the model was trained with
        "CAM_FRONT": {
          "image": "path/or/array",         # (H, W, 3) uint8 BGR array, or an image file
          "intrinsics": [[...3x3...]],      # pixels of this image
          "cam2ego": [[...4x4...]],         # camera -> ego
          "ego2global": [[...4x4...]]       # optional: ego pose at this camera's exposure
        }, ...
      }
    }

Consecutive frames of one ``scene`` are one sequence: the inferencer carries the previous BEV
from one call to the next (the model's video test mode) and restarts at a new scene. Boxes
come back in the LiDAR / ego frame of ``lidar2ego`` as ``(x, y, z_bottom, l, w, h, yaw, vx,
vy)`` (docs/data_format.md) and in the devkit's global form.
"""
import copy
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import import_modules_from_strings

from mmdet.registry import MODELS, TRANSFORMS
from ..constants import CAMERAS, CLASSES
from ..datasets.nuscenes_dataset import stack_frames
from ..datasets.validation import check_intrinsics, check_pose, check_projection, check_vector
from ..geometry.boxes import lidar_boxes_to_global, matrix_to_quaternion
from ..geometry.camera import compose_lidar2img
from ..geometry.ego_motion import can_bus_vector


ConfigType = Union[Config, ConfigDict]


class CalibrationError(ValueError):
    """A frame's calibration is missing, mis-shaped or not a valid transform."""


def init_model(config: Union[str, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a model from a config and load a checkpoint (strictly, safely).

    Args:
        config (str | Config): config file or object.
        checkpoint (str, optional): checkpoint file; None keeps the initialisation.
        device (str): e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options (dict, optional): overrides, as ``--cfg-options`` takes them.

    Returns:
        nn.Module: the model in eval mode on ``device``, with ``cfg`` and ``dataset_meta``.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    imports = cfg.get('custom_imports', {}).get('imports', ['projects.bevformer'])
    import_modules_from_strings(imports)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = copy.deepcopy(cfg.model)
    # The backbone's ImageNet / pretraining init is pointless before loading a checkpoint.
    if checkpoint is not None:
        for key in ('img_backbone', 'img_neck'):
            if key in model_cfg:
                model_cfg[key]['init_cfg'] = None
    model = MODELS.build(model_cfg)
    classes = list(cfg.get('class_names', CLASSES))
    if checkpoint is not None:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        classes = list(meta.get('dataset_meta', {}).get('classes', classes))
    else:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')  # init_weights reports every parameter at INFO
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    model.cfg = cfg
    model.dataset_meta = dict(classes=classes)
    return model.to(device).eval()


def _matrix(value: Any, shape: tuple, where: str) -> np.ndarray:
    try:
        mat = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise CalibrationError(f'{where} must be a {shape} matrix of numbers: {err}') from err
    if mat.shape != shape:
        raise CalibrationError(f'{where} must have shape {shape}, got {mat.shape}')
    return mat


def frame_to_results(frame: dict, cameras: Sequence[str] = CAMERAS,
                     name: str = 'frame') -> dict:
    """A frame dict (module docstring) -> the per-frame dict the test pipeline reads.

    Args:
        frame (dict): one frame.
        cameras (sequence of str): camera names in the model's order.
        name (str): how to call the frame in errors (e.g. its file).

    Returns:
        dict: as ``NuScenesBEVDataset`` hands its pipeline (no ground truth).

    Raises:
        CalibrationError: naming the frame, camera and key at fault.
    """
    if not isinstance(frame, dict) or not isinstance(frame.get('cameras'), dict):
        raise CalibrationError(f'{name}: a frame is a dict with a "cameras" dict')
    missing = [c for c in cameras if c not in frame['cameras']]
    if missing:
        raise CalibrationError(f'{name}: cameras {missing} are missing (the model needs '
                               f'{list(cameras)})')
    if 'ego2global' not in frame:
        raise CalibrationError(f'{name}: "ego2global" (4x4 ego pose) is missing')
    ego2global = _matrix(frame['ego2global'], (4, 4), f'{name}: ego2global')
    lidar2ego = _matrix(frame.get('lidar2ego', np.eye(4)), (4, 4), f'{name}: lidar2ego')
    problems = check_pose('ego2global', ego2global) + check_pose('lidar2ego', lidar2ego)
    lidar2global = ego2global @ lidar2ego
    images, paths, cam2imgs, lidar2cams, lidar2imgs = [], [], [], [], []
    for cam in cameras:
        c = frame['cameras'][cam]
        where = f'{name}: cameras.{cam}'
        for key in ('image', 'intrinsics', 'cam2ego'):
            if key not in c:
                raise CalibrationError(f'{where}.{key} is missing')
        cam2img = _matrix(c['intrinsics'], (3, 3), f'{where}.intrinsics')
        cam2ego = _matrix(c['cam2ego'], (4, 4), f'{where}.cam2ego')
        cam_ego2global = _matrix(c.get('ego2global', ego2global), (4, 4), f'{where}.ego2global')
        problems += check_intrinsics(f'cameras.{cam}.intrinsics', cam2img)
        problems += check_pose(f'cameras.{cam}.cam2ego', cam2ego)
        problems += check_pose(f'cameras.{cam}.ego2global', cam_ego2global)
        if problems:
            break
        # LiDAR -> global at the LiDAR time -> ego at the camera time -> camera.
        lidar2cam = np.linalg.solve(cam_ego2global @ cam2ego, lidar2global)
        lidar2img = compose_lidar2img(cam2img, lidar2cam)
        problems += check_projection(f'cameras.{cam}.lidar2img', lidar2img)
        image = c['image']
        if isinstance(image, str):
            paths.append(image)
        else:
            images.append(np.asarray(image))
        cam2imgs.append(cam2img)
        lidar2cams.append(lidar2cam)
        lidar2imgs.append(lidar2img)
    if paths and images:
        raise CalibrationError(f'{name}: give every camera image as a path or every one as an '
                               f'array, not a mix')
    can_bus = frame.get('can_bus')
    if can_bus is None:
        can_bus = can_bus_vector(ego2global[:3, 3], matrix_to_quaternion(ego2global[:3, :3]))
    can_bus = np.asarray(can_bus, dtype=np.float64)
    if can_bus.shape != (18, ):
        raise CalibrationError(f'{name}: can_bus must have 18 values, got {can_bus.shape}')
    problems += check_vector('can_bus', can_bus)
    if problems:
        raise CalibrationError(f'{name}: ' + '; '.join(problems))
    out = dict(
        token=str(frame.get('token', name)), scene_token=str(frame.get('scene', 'default')),
        scene_name=str(frame.get('scene', 'default')),
        timestamp=float(frame.get('timestamp', 0.0)), lidar2ego=lidar2ego,
        ego2global=ego2global, lidar2global=lidar2global, can_bus=can_bus,
        cam_names=list(cameras), lidar2img=np.stack(lidar2imgs), cam2img=np.stack(cam2imgs),
        lidar2cam=np.stack(lidar2cams), gt_bboxes_3d=np.zeros((0, 9), np.float32),
        gt_labels_3d=np.zeros(0, np.int64))
    if paths:
        out['img_paths'] = paths
    else:
        out['img_arrays'] = images
    return out


def load_frame(path: str) -> dict:
    """A frame from a JSON file; relative image paths are taken relative to the file."""
    with open(path) as f:
        frame = json.load(f)
    for cam in (frame.get('cameras') or {}).values():
        image = cam.get('image') if isinstance(cam, dict) else None
        if isinstance(image, str) and not osp.isabs(image):
            cam['image'] = osp.join(osp.dirname(osp.abspath(path)), image)
    frame.setdefault('token', osp.splitext(osp.basename(path))[0])
    return frame


class BEVFormerInferencer(BaseInferencer):
    """Multi-camera 3D detection (and BEV segmentation) on frames outside any dataset.

    Args:
        model (str | Config): config file or object.
        weights (str, optional): checkpoint (loaded strictly and safely).
        device (str): e.g. ``'cpu'``.
        scope (str): registry scope. Default ``'mmdet'``.
        fuse_conv_bn (bool), channels_last (bool): the optional backbone speed-ups of
            :func:`optimize_for_cpu_inference`. Default False.

    Call it with one frame or a list of frames (dicts or JSON paths, module docstring); frames
    of one scene in order share the temporal history. Returns ``{'predictions': [...],
    'visualization': [...]}`` with per frame ``bboxes_3d`` (M, 9), ``scores_3d``, ``labels_3d``,
    ``label_names``, ``boxes_global`` (devkit form) and ``bev_seg`` (K, H, W) when the model
    has a segmentation head; ``out_dir`` writes a picture per frame (six cameras + BEV).
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'out_dir', 'score_thr', 'show'}
    postprocess_kwargs: set = set()

    def __init__(self, model: Union[str, Config], weights: Optional[str] = None,
                 device: str = 'cpu', scope: str = 'mmdet', show_progress: bool = False,
                 fuse_conv_bn: bool = False, channels_last: bool = False) -> None:
        self._device = device
        self._speedups = dict(fuse_conv_bn=fuse_conv_bn, channels_last=channels_last)
        super().__init__(model=model, weights=weights, device=device, scope=scope,
                         show_progress=show_progress)
        self.cameras = tuple(self.cfg.get('test_dataloader', {}).get('dataset', {}).get(
            'cameras', CAMERAS))
        self._sequence: Optional[str] = None
        self._frame_idx = -1

    # mmengine hooks ---------------------------------------------------------------
    def _init_model(self, cfg: ConfigType, weights: Optional[str], device: str = 'cpu'):
        from .fast_inference import optimize_for_cpu_inference
        return optimize_for_cpu_inference(init_model(cfg, weights, device), **self._speedups)

    def _init_pipeline(self, cfg: ConfigType) -> Compose:
        """The config's test pipeline (the same steps ``tools/test.py`` runs)."""
        pipeline = cfg.test_dataloader.dataset.pipeline
        return Compose([TRANSFORMS.build(copy.deepcopy(t)) for t in pipeline])

    def _init_collate(self, cfg: ConfigType):
        return pseudo_collate

    def _init_visualizer(self, cfg: ConfigType):
        return None  # drawing is done by projects.bevformer.visualization.draw_sample

    def _inputs_to_list(self, inputs) -> list:
        return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs):
        """One frame at a time, in order (the history runs through the frames)."""
        if batch_size != 1:
            raise ValueError(f'BEVFormerInferencer: batch_size must be 1, got {batch_size}: '
                             f'frames run in order, each using the previous one\'s BEV')
        for i, frame in enumerate(inputs):
            name = frame if isinstance(frame, str) else f'frame {i}'
            frame = load_frame(frame) if isinstance(frame, str) else frame
            results = frame_to_results(frame, self.cameras, name=str(name))
            scene = results['scene_token']
            if scene != self._sequence:
                self.model.reset_video_state()
                self._sequence, self._frame_idx = scene, -1
            self._frame_idx += 1
            results.update(frame_idx=self._frame_idx, prev_exists=self._frame_idx > 0)
            packed = self.pipeline(results)
            item = stack_frames([packed], [results['prev_exists']])
            yield pseudo_collate([item])

    def forward(self, inputs: dict, **kwargs) -> List:
        with torch.no_grad():
            return self.model.test_step(inputs)

    def visualize(self, inputs: list, preds: List, out_dir: Optional[str] = None,
                  score_thr: float = 0.3, show: bool = False, **kwargs) -> Optional[List[str]]:
        """Draw each frame's boxes above ``score_thr`` on the six cameras and in BEV."""
        if out_dir is None:
            return None
        from ..visualization import draw_sample
        os.makedirs(out_dir, exist_ok=True)
        classes = self.model.dataset_meta['classes']
        paths = []
        for i, (frame, pred) in enumerate(zip(inputs, preds)):
            name = frame if isinstance(frame, str) else f'frame {i}'
            frame = load_frame(frame) if isinstance(frame, str) else frame
            results = frame_to_results(frame, self.cameras, name=str(name))
            load = TRANSFORMS.build(dict(type='LoadMultiViewImages'))
            imgs = [im[..., ::-1] for im in load(dict(results))['img']]  # BGR -> RGB
            inst = pred.pred_instances_3d
            keep = inst.scores_3d >= score_thr
            out_file = osp.join(out_dir, f'{pred.metainfo.get("token", i)}.png')
            draw_sample(imgs, results['lidar2img'], self.cameras,
                        pred_boxes=inst.bboxes_3d[keep].cpu().numpy(),
                        pred_scores=inst.scores_3d[keep].cpu().numpy(),
                        pred_labels=inst.labels_3d[keep].cpu().numpy(), classes=classes,
                        title=f'{pred.metainfo.get("token", i)}: {int(keep.sum())} boxes with '
                              f'score >= {score_thr}', out_file=out_file)
            paths.append(out_file)
        return paths

    def postprocess(self, preds: List, visualization: Optional[List[str]] = None,
                    return_datasamples: bool = False, **kwargs) -> Dict[str, Any]:
        """Plain numpy results (or the data samples themselves)."""
        if return_datasamples:
            return dict(predictions=preds, visualization=visualization)
        classes = self.model.dataset_meta['classes']
        out = []
        for pred in preds:
            inst = pred.pred_instances_3d
            boxes = inst.bboxes_3d.cpu().numpy()
            labels = inst.labels_3d.cpu().numpy()
            res = dict(token=pred.metainfo.get('token'), bboxes_3d=boxes,
                       scores_3d=inst.scores_3d.cpu().numpy(), labels_3d=labels,
                       label_names=[classes[int(k)] for k in labels],
                       boxes_global=lidar_boxes_to_global(boxes, pred.metainfo['lidar2global']))
            if 'pred_bev_seg' in pred:
                res['bev_seg'] = pred.pred_bev_seg.cpu().numpy()
            out.append(res)
        return dict(predictions=out, visualization=visualization)

