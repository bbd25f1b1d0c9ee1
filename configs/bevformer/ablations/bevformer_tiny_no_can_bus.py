# Ablation: no CAN-bus / ego-pose embedding added to the BEV queries (the previous BEV is
# still aligned by the ego motion).
_base_ = '../bevformer_tiny.py'
model = dict(bev_encoder=dict(use_can_bus=False))
