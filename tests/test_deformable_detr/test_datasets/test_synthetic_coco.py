"""The synthetic COCO-format generator, its dataset class and a short training run."""
import filecmp
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from pycocotools.coco import COCO

import projects.deformable_detr  # noqa: F401  (registers the modules)
from projects.deformable_detr.datasets import (SHAPE_CLASSES, SyntheticCocoDataset,
                                               generate_synthetic_coco)

from tests.shared_data import REPO_ROOT as REPO

SYNTHETIC_CONFIG = osp.join(REPO, 'configs', 'deformable_detr',
                            'deformable-detr_r18_1xb4-2k_synthetic-coco.py')


@pytest.fixture(scope='module')
def dataset_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_coco'))
    generate_synthetic_coco(root, num_train=12, num_val=5, seed=3)
    return root


def test_pycocotools_loads_requested_counts(dataset_root):
    for split, count in (('train', 12), ('val', 5)):
        coco = COCO(osp.join(dataset_root, 'annotations', f'instances_{split}.json'))
        assert len(coco.getImgIds()) == count
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
        assert len(coco.getAnnIds()) >= count  # at least one object per image
        for img_id in coco.getImgIds():
            info = coco.loadImgs(img_id)[0]
            img = cv2.imread(osp.join(dataset_root, split, info['file_name']))
            assert img.shape == (info['height'], info['width'], 3)
            assert 128 <= info['height'] <= 256 and 128 <= info['width'] <= 256
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
                x, y, w, h = ann['bbox']
                assert w > 0 and h > 0 and x >= 0 and y >= 0
                assert x + w <= info['width'] and y + h <= info['height']
                assert ann['iscrowd'] == 0 and ann['category_id'] in (1, 2, 3)
                assert 0 < ann['area'] <= w * h
                # the polygon rasterises to (almost) the annotated area
                mask_area = coco.annToMask(ann).sum()
                assert abs(mask_area - ann['area']) <= 0.15 * ann['area'] + 10


def test_objects_are_drawn_in_their_boxes(dataset_root):
    """Inside a box the shape's flat colour covers a large share of the pixels."""
    coco = COCO(osp.join(dataset_root, 'annotations', 'instances_train.json'))
    ann = coco.loadAnns(coco.getAnnIds(imgIds=1))[0]
    img = cv2.imread(osp.join(dataset_root, 'train', '000000.png'))
    x, y, w, h = ann['bbox']
    crop = img[y:y + h, x:x + w].reshape(-1, 3)
    _, counts = np.unique(crop, axis=0, return_counts=True)
    assert counts.max() >= 0.3 * ann['area']


def test_deterministic_by_seed(tmp_path, dataset_root):
    generate_synthetic_coco(str(tmp_path / 'a'), num_train=3, num_val=2, seed=3)
    generate_synthetic_coco(str(tmp_path / 'b'), num_train=3, num_val=1, seed=4)
    for name in ('000000.png', '000002.png'):
        # image i does not depend on how many images were asked for
        assert filecmp.cmp(tmp_path / 'a' / 'train' / name,
                           osp.join(dataset_root, 'train', name), shallow=False)
    assert not filecmp.cmp(tmp_path / 'a' / 'train' / '000000.png',
                           tmp_path / 'b' / 'train' / '000000.png', shallow=False)
    with open(tmp_path / 'a' / 'annotations' / 'instances_val.json') as f:
        assert len(json.load(f)['images']) == 2


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match='num_train'):
        generate_synthetic_coco(str(tmp_path), num_train=-1)
    with pytest.raises(ValueError, match='size_range'):
        generate_synthetic_coco(str(tmp_path), num_train=1, size_range=(64, 32))


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    subprocess.run([sys.executable, osp.join(REPO, 'tools', 'create_synthetic_coco.py'),
                    '--out-dir', str(out), '--num-train', '2', '--num-val', '1',
                    '--seed', '1'], check=True, capture_output=True, timeout=120)
    coco = COCO(str(out / 'annotations' / 'instances_train.json'))
    assert len(coco.getImgIds()) == 2


def test_dataset_class_reads_it(dataset_root):
    ds = SyntheticCocoDataset(data_root=dataset_root, ann_file='annotations/instances_val.json',
                              data_prefix=dict(img='val/'), pipeline=[])
    assert len(ds) == 5
    assert ds.metainfo['classes'] == SHAPE_CLASSES
    item = ds.get_data_info(0)
    assert item['img_path'] == osp.join(dataset_root, 'val', '000000.png')
    assert all(0 <= inst['bbox_label'] < 3 for inst in item['instances'])


def test_short_training_lowers_loss(dataset_root, tmp_path):
    """The synthetic config end to end (dataset, pipeline, model, optimizer): a few steps
    on one batch give finite losses that go down."""
    from mmengine.runner import Runner
    cfg = Config.fromfile(SYNTHETIC_CONFIG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.dataset.data_root = dataset_root
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_dataloader.batch_size = 2
    cfg.val_dataloader.dataset.data_root = dataset_root
    cfg.val_dataloader.num_workers = 0
    cfg.val_dataloader.persistent_workers = False
    cfg.val_evaluator.ann_file = osp.join(dataset_root, 'annotations', 'instances_val.json')
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    # a thinner model keeps the test fast; everything else is the config's
    cfg.model.backbone.base_channels = 16
    cfg.model.neck.in_channels = [32, 64, 128]
    cfg.model.num_queries = 20
    cfg.model.encoder.num_layers = 1
    cfg.model.decoder.num_layers = 2
    cfg.optim_wrapper.optimizer.lr = 1e-3
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.init_weights()
    optim = runner.build_optim_wrapper(cfg.optim_wrapper)
    batch = next(iter(runner.build_dataloader(cfg.train_dataloader)))
    model.train()
    totals = []
    for _ in range(6):
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        total, _ = model.parse_losses(losses)
        assert torch.isfinite(total), losses
        optim.update_params(total)
        totals.append(total.item())
    assert all(np.isfinite(totals))
    print('losses', totals)
    assert min(totals[-2:]) < totals[0], totals
