# The quickstart with perspective supervision during BEV training too (BEVFormer v2's idea):
# the backbone and neck train (from the shipped perspective pretraining, as in the quickstart)
# and a PerspectiveHead on the image features adds its losses (nothing at test time). Slower
# per step than the quickstart, whose backbone is frozen (issue 13's note has both).
_base_ = './bevformer_quickstart_synthetic.py'

model = dict(
    img_backbone=dict(frozen_stages=-1, norm_eval=False),
    perspective_head=dict(type='PerspectiveHead', in_channels=_base_.embed_dims,
                          num_classes=10, feat_channels=64, in_level=0))
