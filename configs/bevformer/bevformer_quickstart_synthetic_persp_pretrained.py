# The quickstart with perspective supervision whose backbone and neck start from the
# perspective pretraining stage (configs/bevformer/pretrain/
# perspective_pretrain_quickstart_synthetic.py); the BEV encoder and heads train from scratch.
_base_ = './bevformer_quickstart_synthetic_persp.py'

pretrained = 'work_dirs/perspective_pretrain_quickstart_synthetic/iter_600.pth'
model = dict(
    img_backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained,
                                    prefix='img_backbone.')),
    img_neck=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                                prefix='img_neck.')))
