# Perspective pretraining for the quickstart (the role FCOS3D plays for BEVFormer small / base):
# the quickstart's backbone + neck with a PerspectiveHead, trained alone on single frames of the
# synthetic dataroot (no BEV encoder). Then start the quickstart from it:
#   .venv/bin/python tools/train.py configs/bevformer/pretrain/perspective_pretrain_quickstart_synthetic.py
#   .venv/bin/python tools/train.py configs/bevformer/bevformer_quickstart_synthetic_persp.py \
#       --cfg-options pretrained=work_dirs/perspective_pretrain_quickstart_synthetic/iter_600.pth
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(
    _delete_=True,
    type='PerspectivePretrainer',
    data_preprocessor=_base_.model.data_preprocessor,
    img_backbone=_base_.model.img_backbone,
    img_neck=_base_.model.img_neck,
    perspective_head=dict(type='PerspectiveHead', in_channels=_base_.embed_dims,
                          num_classes=10, feat_channels=64, in_level=0))

# Single frames, more of them per step (no BEV encoder to pay for).
train_dataloader = dict(batch_size=4, dataset=dict(queue_length=1))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min_ratio=1e-2)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(
    visualization=dict(_delete_=True, type='DetVisualizationHook'),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
