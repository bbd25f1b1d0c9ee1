# Ablation: a coarser 25x25 BEV grid (4.1 m cells) for the tiny model.
_base_ = '../bevformer_tiny.py'
model = dict(bev_encoder=dict(bev_h=25, bev_w=25))
