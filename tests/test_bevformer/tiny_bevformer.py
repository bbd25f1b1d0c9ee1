"""A seconds-sized BEVFormer config for tests, derived from the quickstart config."""
import os.path as osp

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICKSTART = osp.join(REPO, 'configs/bevformer/bevformer_quickstart_synthetic.py')


def tiny_cfg(data_root: str) -> Config:
    """The quickstart config shrunk to seconds: 8x8 BEV, 32-d, 1 + 2 layers, 20 queries."""
    cfg = Config.fromfile(QUICKSTART)
    dims = 32
    cfg.merge_from_dict({
        'model.img_backbone.base_channels': 8,
        'model.img_backbone.stem_channels': 8,
        'model.img_neck.in_channels': [32, 64],
        'model.img_neck.out_channels': dims,
        'model.perspective_head.in_channels': dims,
        'model.perspective_head.feat_channels': 16,
        # the shipped pretrained backbone has the quickstart's widths: start from random ones,
        # and train them (the gradients reach the images' features in these tests)
        'model.img_backbone.init_cfg': None,
        'model.img_neck.init_cfg': None,
        'model.img_backbone.frozen_stages': -1,
        'model.img_backbone.norm_eval': False,
        # Sizes are stated once, on the encoder: its layers and the heads follow.
        'model.bev_encoder.bev_h': 8,
        'model.bev_encoder.bev_w': 8,
        'model.bev_encoder.embed_dims': dims,
        'model.bev_encoder.num_layers': 1,
        'model.heads.det.num_query': 20,
        'model.heads.det.decoder.num_layers': 2,
        'model.heads.det.bbox_coder.max_num': 20,
    })
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    for ev in ('val_evaluator', 'test_evaluator'):
        cfg[ev].data_root = data_root
        cfg[ev].ann_file = osp.join(data_root, 'nuscenes_infos_val.pkl')
        cfg[ev].version = 'v1.0-mini'  # the test dataroots are mini-sized
    return cfg
