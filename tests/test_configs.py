"""Every config under configs/ (not _base_) loads, names registered types, and builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from mmdet.registry import DATASETS, METRICS, MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, REPO).split(osp.sep))


def test_configs_found():
    assert any('bevformer' in c for c in CONFIGS) and any('deformable_detr' in c for c in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    assert cfg.get('default_scope') == 'mmdet', f'{path}: default_scope must be mmdet'
    imports = cfg.get('custom_imports', {}).get('imports', [])
    assert imports, f'{path}: custom_imports missing'
    import_modules_from_strings(imports)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    # The datasets and metrics it names exist (building them needs the data on disk).
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader) is not None:
            assert DATASETS.get(cfg[loader].dataset.type) is not None, \
                f'{path}: unknown dataset {cfg[loader].dataset.type}'
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        for ev in (evaluators if isinstance(evaluators, list) else [evaluators]):
            if ev is not None:
                assert METRICS.get(ev['type']) is not None, f'{path}: unknown metric {ev["type"]}'
