# Ablation of the quickstart recipe (the previous default): the pretrained backbone stays frozen
# (no backbone backward, a cheaper step) and there is no perspective supervision.
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(
    img_backbone=dict(frozen_stages=4, norm_eval=True),
    perspective_head=None)
