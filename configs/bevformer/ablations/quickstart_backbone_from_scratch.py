# Ablation of the quickstart recipe: no perspective pretraining; the backbone and neck train
# from scratch with the rest of the model (perspective supervision still on).
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(
    img_backbone=dict(init_cfg=None),
    img_neck=dict(init_cfg=None))
