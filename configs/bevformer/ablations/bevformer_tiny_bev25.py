# Ablation: a coarser 25x25 BEV grid (4.1 m cells) for the tiny model.
_base_ = '../bevformer_tiny.py'
bev_h = 25
bev_w = 25
model = dict(
    bev_encoder=dict(bev_h=bev_h, bev_w=bev_w),
    heads=dict(det=dict(bev_h=bev_h, bev_w=bev_w)))
