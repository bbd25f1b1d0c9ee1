# BEVFormer-small: as base, but 1280x720 input (x0.8), only C5 (1 level) into spatial
# cross-attention, BEV 150x150, 3 encoder layers, a 3-frame queue, backbone checkpointing.
_base_ = './bevformer_base.py'

bev_h = 150
bev_w = 150
img_norm_cfg = dict(mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False)
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]

model = dict(
    img_backbone=dict(out_indices=(3, ), with_cp=True),
    img_neck=dict(in_channels=[2048], num_outs=1, add_extra_convs=False),
    bev_encoder=dict(
        bev_h=bev_h, bev_w=bev_w, num_feature_levels=1, num_layers=3,
        layer_cfg=dict(cross_attn_cfg=dict(deformable_attention=dict(num_levels=1)))),
    heads=dict(det=dict(bev_h=bev_h, bev_w=bev_w)))

train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='MultiViewPhotoMetricDistortion'),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewResize', scale_factor=0.8),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
test_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewResize', scale_factor=0.8),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, queue_length=3))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
