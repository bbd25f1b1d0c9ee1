# Ablation: fewer sampling points in spatial cross-attention (4 instead of 8: one per
# pillar height instead of two).
_base_ = '../bevformer_tiny.py'
model = dict(bev_encoder=dict(layer_cfg=dict(cross_attn_cfg=dict(
    deformable_attention=dict(num_points=4)))))
