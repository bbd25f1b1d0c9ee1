# BEVFormer-base on nuScenes (the original's settings): R101-DCN (caffe) from the FCOS3D
# checkpoint, FPN C3-C5 + 1 extra level (4 levels into spatial cross-attention), 1600x900
# input, BEV 200x200, 6 encoder + 6 decoder layers, a 4-frame queue, 900 queries,
# AdamW 2e-4 (backbone x0.1) with cosine decay, 24 epochs on 8 GPUs x 1 sample.
_base_ = [
    '../_base_/datasets/nuscenes.py', '../_base_/models/bevformer_base.py',
    '../_base_/schedules/adamw_cosine_24e.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['projects.bevformer'], allow_failed_imports=False)

point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
queue_length = 4
# caffe-style weights: BGR, mean subtraction only
img_norm_cfg = dict(mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False)

train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='MultiViewPhotoMetricDistortion'),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
test_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
train_dataloader = dict(
    dataset=dict(pipeline=train_pipeline, queue_length=queue_length))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The backbone starts from FCOS3D's R101-DCN (as DETR3D / BEVFormer):
# put it at ckpts/r101_dcn_fcos3d_pretrain.pth.
load_from = 'ckpts/r101_dcn_fcos3d_pretrain.pth'
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    visualization=dict(type='BEVVisualizationHook'))  # tools/test.py --show-dir
