# BEVFormer-tiny: ResNet-50 (pytorch style, ImageNet), only C5 into spatial
# cross-attention, 800x450 input (x0.5), BEV 50x50, 3 encoder layers, a 3-frame queue.
_base_ = './bevformer_small.py'

model = dict(
    # torchvision weights: RGB, ImageNet mean / std
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True),
    img_backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    bev_encoder=dict(bev_h=50, bev_w=50))

train_pipeline = [dict(t, scale_factor=0.5) if t['type'] == 'MultiViewResize' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale_factor=0.5) if t['type'] == 'MultiViewResize' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
load_from = None  # ImageNet init through the backbone's init_cfg
load_partial = False
