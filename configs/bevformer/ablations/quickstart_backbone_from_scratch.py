# Ablation of the quickstart recipe: no perspective pretraining; the backbone and neck train
# from scratch with the rest of the model (perspective supervision still on): every stage trains
# and BatchNorm computes its statistics (nothing pretrained to keep frozen).
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(
    img_backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
    img_neck=dict(init_cfg=None))
