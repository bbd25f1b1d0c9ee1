# Perspective pretraining for the quickstart (the role FCOS3D plays for BEVFormer small / base):
# the quickstart's backbone + neck with a PerspectiveHead, trained alone on single frames of the
# synthetic dataroot (no BEV encoder). Then start the quickstart from it:
#   .venv/bin/python tools/train.py configs/bevformer/pretrain/perspective_pretrain_quickstart_synthetic.py
#   CKPT=work_dirs/perspective_pretrain_quickstart_synthetic/iter_600.pth
#   .venv/bin/python tools/train.py configs/bevformer/bevformer_quickstart_synthetic.py \
#       --cfg-options model.img_backbone.init_cfg.checkpoint=$CKPT \
#       model.img_neck.init_cfg.checkpoint=$CKPT
# (checkpoints/README.md: how the shipped quickstart_perspective_backbone-*.pth was made.)
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(
    _delete_=True,
    type='PerspectivePretrainer',
    data_preprocessor=_base_.model.data_preprocessor,
    # the quickstart's backbone and neck, trained from scratch here (the quickstart starts
    # from what this stage produces)
    img_backbone=dict(_base_.model.img_backbone, frozen_stages=-1, norm_eval=False,
                      init_cfg=None),
    img_neck=dict(_base_.model.img_neck, init_cfg=None),
    perspective_head=_base_.model.perspective_head,
    img_channels_last=_base_.model.img_channels_last)

# Single frames, more of them per step (no BEV encoder to pay for). AdamW 1e-3, stated here:
# the shipped backbone (checkpoints/README.md) was trained with it, whatever the quickstart's
# own learning rate becomes.
train_dataloader = dict(batch_size=4, dataset=dict(queue_length=1))
max_iters = 600
optim_wrapper = dict(optimizer=dict(lr=1e-3))
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
