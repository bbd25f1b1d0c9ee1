# The quickstart with perspective supervision (BEVFormer v2's idea): a PerspectiveHead on the
# image features adds its losses in training (nothing at test time).
_base_ = './bevformer_quickstart_synthetic.py'

model = dict(
    perspective_head=dict(type='PerspectiveHead', in_channels=_base_.embed_dims,
                          num_classes=10, feat_channels=64, in_level=0))
