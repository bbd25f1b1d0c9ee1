"""Pictures of 3D predictions during validation and testing: GT and predicted boxes on the six
cameras and in BEV, handed to ``runner.visualizer`` (so every configured vis backend --
``LocalVisBackend``, ``TensorboardVisBackend``, ``WandbVisBackend`` -- receives them), or written
as PNG files by ``tools/test.py --show-dir``."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure
from mmengine.hooks import Hook

from mmdet.registry import HOOKS
from .multiview import draw_sample


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a figure on an Agg canvas (what vis backends take)."""
    fig.canvas.draw()
    return np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])


@HOOKS.register_module()
class BEVVisualizationHook(Hook):
    """Draw predictions (``pred_instances_3d``) and GT of validation / test samples.

    - Validation (also inside training): the first sample of every ``interval``-th batch goes
      to ``runner.visualizer.add_image('val_<token>', rgb, step=runner.iter)``: the same
      samples at each validation, a picture per validation step in TensorBoard / W&B, or
      ``vis_data/vis_image/val_<token>_<iter>.png`` with the ``LocalVisBackend``.
    - Test: every sample of every ``test_interval``-th batch; to the visualizer as
      ``test_<token>`` (step: the test sample's index) or, with ``test_out_dir`` (set by
      ``tools/test.py --show-dir DIR``), to ``<work_dir>/<timestamp>/<test_out_dir>/<token>.png``
      instead.

    The images are re-read from ``img_paths`` and resized to the network's ``img_shape``
    so that the metainfo ``lidar2img`` applies (pipelines that crop are not supported).

    Args:
        draw (bool): off by default; ``tools/test.py --show-dir`` turns it on; set it in the
            config (``default_hooks.visualization.draw=True``) for pictures during training.
        interval (int): draw every ``interval``-th validation batch.
        score_thr (float): predictions below it are not drawn.
        test_out_dir (str, optional): folder under the run's work dir for the test PNGs.
        test_interval (int): draw every ``test_interval``-th test batch.
        dpi (int): resolution of the pictures (the figure is 22 x 6.2 inches).
    """

    def __init__(self, draw: bool = False, interval: int = 50, score_thr: float = 0.3,
                 test_out_dir: Optional[str] = None, test_interval: int = 1,
                 dpi: int = 80) -> None:
        if interval < 1 or test_interval < 1:
            raise ValueError(f'BEVVisualizationHook: interval and test_interval must be >= 1, '
                             f'got {interval} and {test_interval}')
        self.draw = draw
        self.interval = interval
        self.score_thr = score_thr
        self.test_out_dir = test_out_dir
        self.test_interval = test_interval
        self.dpi = dpi
        self._test_index = 0

    # ---------------------------------------------------------------------------- drawing
    def render(self, data_sample, classes: Optional[Sequence[str]] = None,
               out_file: Optional[str] = None) -> Figure:
        """The picture of one predicted data sample (and its GT when it has one)."""
        meta = data_sample.metainfo
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
        pred = data_sample.pred_instances_3d
        keep = (pred.scores_3d >= self.score_thr).cpu().numpy()
        gt = data_sample.gt_instances_3d if 'gt_instances_3d' in data_sample else None
        return draw_sample(
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
            out_file=out_file, dpi=self.dpi)

    @staticmethod
    def _classes(dataloader) -> Optional[Sequence[str]]:
        dataset = getattr(dataloader, 'dataset', None)
        return (getattr(dataset, 'metainfo', None) or {}).get('classes')

    # ------------------------------------------------------------------------------ hooks
    def after_val_iter(self, runner, batch_idx: int, data_batch: dict = None,
                       outputs: Optional[Sequence] = None) -> None:
        if not self.draw or not outputs or batch_idx % self.interval:
            return
        sample = outputs[0]
        fig = self.render(sample, self._classes(runner.val_dataloader))
        runner.visualizer.add_image(f'val_{sample.metainfo.get("token", batch_idx)}',
                                    figure_to_rgb(fig), step=runner.iter)

    def before_test(self, runner) -> None:
        self._test_index = 0

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict = None,
                        outputs: Optional[Sequence] = None) -> None:
        if not self.draw or outputs is None or batch_idx % self.test_interval:
            return
        out_dir = None
        if self.test_out_dir is not None:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            os.makedirs(out_dir, exist_ok=True)
        classes = self._classes(runner.test_dataloader)
        for sample in outputs:
            token = sample.metainfo.get('token', f'{batch_idx}_{self._test_index}')
            if out_dir is not None:
                self.render(sample, classes, out_file=osp.join(out_dir, f'{token}.png'))
            else:
                runner.visualizer.add_image(f'test_{token}',
                                            figure_to_rgb(self.render(sample, classes)),
                                            step=self._test_index)
            self._test_index += 1
