"""BEVFormer with a BEV segmentation head: the seg configs load and build with matching grids,
joint det + seg training lowers the seg loss and prediction fills both fields (tiny model on
the tiny synthetic dataroot, ``tiny_root`` in tests/conftest.py)."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import projects.bevformer  # noqa: F401
from mmdet.registry import DATASETS, METRICS, MODELS
from tests.shared_data import REPO_ROOT as REPO
from tests.test_bevformer.bev_seg_helpers import CLASSES, PC_RANGE

SEG_CONFIGS = ['bevformer_quickstart_synthetic_seg.py', 'bevformer_quickstart_synthetic_det_seg.py',
               'bevformer_tiny_seg.py', 'bevformer_tiny_det_seg.py']


@pytest.mark.parametrize('name', SEG_CONFIGS)
def test_seg_configs_load_and_build(name):
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs/bevformer', name))
    joint = 'det_seg' in name
    assert set(cfg.model.heads) == ({'det', 'seg'} if joint else {'seg'})
    evaluators = cfg.val_evaluator if isinstance(cfg.val_evaluator, list) else [cfg.val_evaluator]
    assert [e['type'] for e in evaluators] == (['NuScenesMetric', 'BEVSegMetric'] if joint
                                               else ['BEVSegMetric'])
    for loader in ('train_dataloader', 'val_dataloader'):
        steps = {t['type']: t for t in cfg[loader].dataset.pipeline}
        lab = steps['LoadBEVSegLabels']
        head = cfg.model.heads.seg
        assert head.num_classes == len(lab['classes']) == len(evaluators[-1]['classes'])
    model = MODELS.build(cfg.model)
    seg = model.heads['seg']
    assert type(seg).__name__ == 'BEVSegHead'
    # The label grid is the encoder's grid (handed to the head) times the upsampling.
    assert (lab['bev_h'], lab['bev_w']) == seg.out_size == (
        model.bev_encoder.bev_h * seg.upsample_factor, model.bev_encoder.bev_w * seg.upsample_factor)


def tiny_joint_cfg(data_root: str) -> Config:
    """The joint synthetic config at test size (the detector test's shrunk quickstart)."""
    from tests.test_bevformer.tiny_bevformer import tiny_cfg
    joint = Config.fromfile(osp.join(REPO, 'configs/bevformer',
                                     'bevformer_quickstart_synthetic_det_seg.py'))
    cfg = tiny_cfg(data_root)
    seg = copy.deepcopy(joint.model.heads.seg)
    seg.update(feat_channels=16)
    cfg.model.heads.seg = seg
    cfg.model.head_loss_weights = dict(det=1.0, seg=2.0)
    labels = dict(type='LoadBEVSegLabels', classes=list(CLASSES), bev_h=16, bev_w=16,
                  pc_range=list(PC_RANGE), data_root=data_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = copy.deepcopy(cfg[loader].dataset.pipeline)
        pipeline.insert(-1, labels)
        cfg[loader].dataset.pipeline = pipeline
    return cfg


def test_joint_det_seg_training_and_prediction(tiny_root):
    init_default_scope('mmdet')
    cfg = tiny_joint_cfg(tiny_root)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(queue_length=2, queue_sampling='consecutive', filter_empty_gt=False)
    ds = DATASETS.build(ds_cfg)
    data = model.data_preprocessor(pseudo_collate([ds[1], ds[2]]), True)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seg_losses = []
    for _ in range(3):
        losses = model.loss(data['inputs'], data['data_samples'])
        assert {'loss_cls', 'loss_bbox', 'seg.loss_seg', 'seg.loss_dice'} <= set(losses)
        for key, value in losses.items():
            assert torch.isfinite(value).all(), key
        seg_losses.append((losses['seg.loss_seg'] + losses['seg.loss_dice']).item())
        total = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad()
        total.backward()
        # both heads and the shared encoder receive gradients
        assert model.heads['seg'].cls_conv.weight.grad.abs().sum() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in model.bev_encoder.parameters())
        optim.step()
    assert seg_losses[-1] < seg_losses[0]
    # The head weight multiplies the seg losses.
    model.head_loss_weights['seg'] = 1.0
    model.eval()
    with torch.no_grad():
        once = model.heads['seg'].loss(model.extract_bev(data['inputs'],
                                                         data['data_samples']),
                                       data['data_samples'])
        model.head_loss_weights['seg'] = 2.0
        twice = model.loss(data['inputs'], data['data_samples'])
    torch.testing.assert_close(twice['seg.loss_seg'], 2 * once['loss_seg'])

    # Prediction fills both fields; the evaluators read theirs.
    test_ds = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    model.video_test_mode = False
    batch = model.data_preprocessor(pseudo_collate([test_ds[0], test_ds[1]]), False)
    with torch.no_grad():
        preds = model.predict(batch['inputs'], batch['data_samples'])
    assert all(p.pred_bev_seg.shape == (4, 16, 16) for p in preds)
    assert all(len(p.pred_instances_3d.scores_3d) > 0 for p in preds)
    seg_metric = METRICS.build(dict(type='BEVSegMetric', classes=list(CLASSES)))
    det_metric = METRICS.build(copy.deepcopy(cfg.val_evaluator))
    as_dicts = [p.to_dict() for p in preds]  # what mmengine's Evaluator hands the metrics
    seg_metric.process({}, as_dicts)
    det_metric.process({}, as_dicts)
    assert len(det_metric.results) == 2
    res = seg_metric.compute_metrics(seg_metric.results)
    assert 0.0 <= res['mIoU'] <= 1.0
