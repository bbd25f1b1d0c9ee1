# BEVFormer-small: as base, but 1280x720 input (x0.8), only C5 (1 level) into spatial
# cross-attention, BEV 150x150, 3 encoder layers, a 3-frame queue, backbone checkpointing.
_base_ = './bevformer_base.py'

model = dict(
    img_backbone=dict(out_indices=(3, ), with_cp=True),
    img_neck=dict(in_channels=[2048], num_outs=1, add_extra_convs=False),
    bev_encoder=dict(bev_h=150, bev_w=150, num_feature_levels=1, num_layers=3))

train_pipeline = [dict(t, scale_factor=0.8) if t['type'] == 'MultiViewResize' else t
                  for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale_factor=0.8) if t['type'] == 'MultiViewResize' else t
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, queue_length=3))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
