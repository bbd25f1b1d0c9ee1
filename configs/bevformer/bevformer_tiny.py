# BEVFormer-tiny: ResNet-50 (pytorch style, ImageNet), only C5 into spatial
# cross-attention, 800x450 input (x0.5), BEV 50x50, 3 encoder layers, a 3-frame queue.
_base_ = './bevformer_small.py'

bev_h = 50
bev_w = 50
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
# torchvision weights: RGB, ImageNet mean / std
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)

model = dict(
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
    bev_encoder=dict(bev_h=bev_h, bev_w=bev_w),
    heads=dict(det=dict(bev_h=bev_h, bev_w=bev_w)))

train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='MultiViewPhotoMetricDistortion'),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewResize', scale_factor=0.5),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
test_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewResize', scale_factor=0.5),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
load_from = None  # ImageNet init through the backbone's init_cfg
