"""``tools/test.py --show-dir`` for 3D detectors: one PNG per sample with the GT and the
predicted boxes on the six cameras and in BEV."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from .multiview import draw_sample


@HOOKS.register_module()
class BEVVisualizationHook(Hook):
    """Draw test predictions (``pred_instances_3d``) and GT of each sample.

    The images are re-read from ``img_paths`` and resized to the network's ``img_shape``
    so that the metainfo ``lidar2img`` applies (pipelines that crop are not supported).

    Args:
        draw (bool): off by default; ``tools/test.py --show-dir DIR`` turns it on.
        test_out_dir (str): folder under the run's work dir for the PNGs.
        score_thr (float): predictions below it are not drawn.
        interval (int): draw every ``interval``-th test batch.
    """

    def __init__(self, draw: bool = False, test_out_dir: Optional[str] = None,
                 score_thr: float = 0.3, interval: int = 1) -> None:
        self.draw = draw
        self.test_out_dir = test_out_dir or 'vis'
        self.score_thr = score_thr
        self.interval = interval

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict = None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.draw or outputs is None or batch_idx % self.interval:
            return
        out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        os.makedirs(out_dir, exist_ok=True)
        classes = (runner.test_dataloader.dataset.metainfo or {}).get('classes')
        for ds in outputs:
            meta = ds.metainfo
            paths = meta.get('img_paths')
            if not paths:
                raise KeyError(f'BEVVisualizationHook: sample {meta.get("token")} has no '
                               f'img_paths in its metainfo')
            height, width = meta['img_shape'][:2]
            imgs = []
            for path in paths:
                img = cv2.imread(path)
                if img is None:
                    raise FileNotFoundError(f'BEVVisualizationHook: cannot read {path}')
                imgs.append(cv2.cvtColor(cv2.resize(img, (width, height)), cv2.COLOR_BGR2RGB))
            pred = ds.pred_instances_3d
            keep = (pred.scores_3d >= self.score_thr).cpu().numpy()
            gt = ds.gt_instances_3d if 'gt_instances_3d' in ds else None
            draw_sample(
                imgs,
                np.asarray(meta['lidar2img']),
                meta.get('cam_names', [osp.basename(osp.dirname(p)) for p in paths]),
                gt_boxes=None if gt is None else gt.bboxes_3d.cpu().numpy(),
                gt_labels=None if gt is None else gt.labels_3d.cpu().numpy(),
                pred_boxes=pred.bboxes_3d.cpu().numpy()[keep],
                pred_scores=pred.scores_3d.cpu().numpy()[keep],
                pred_labels=pred.labels_3d.cpu().numpy()[keep],
                classes=classes,
                title=f'{meta.get("scene_name", "")} {meta.get("token", "")}',
                out_file=osp.join(out_dir, f'{meta.get("token", batch_idx)}.png'))
