# Ablation of the quickstart recipe: no perspective pretraining; the backbone and neck train
# from scratch with the rest of the model (what the quickstart did before issue 13).
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(
    img_backbone=dict(frozen_stages=-1, norm_eval=False, init_cfg=None),
    img_neck=dict(init_cfg=None))
