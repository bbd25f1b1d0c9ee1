# BEVFormer-base on nuScenes (the original's settings): R101-DCN (caffe) from the FCOS3D
# checkpoint, FPN C3-C5 + 1 extra level (4 levels into spatial cross-attention), 1600x900
# input, BEV 200x200, 6 encoder + 6 decoder layers, a 4-frame queue, 900 queries,
# AdamW 2e-4 (backbone x0.1) with cosine decay, 24 epochs on 8 GPUs x 1 sample.
_base_ = [
    '../_base_/datasets/nuscenes.py', '../_base_/models/bevformer_base.py',
    '../_base_/schedules/adamw_cosine_24e.py', '../_base_/default_runtime.py'
]
custom_imports = dict(imports=['projects.bevformer'], allow_failed_imports=False)

train_dataloader = dict(dataset=dict(queue_length=4))

# The backbone starts from FCOS3D's R101-DCN (as DETR3D / BEVFormer):
# put it at ckpts/r101_dcn_fcos3d_pretrain.pth.
load_from = 'ckpts/r101_dcn_fcos3d_pretrain.pth'
load_partial = True  # it holds the backbone (and FCOS3D's head), not the BEV encoder / heads
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    visualization=dict(type='BEVVisualizationHook'))  # tools/test.py --show-dir
