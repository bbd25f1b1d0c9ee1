# The learning check: the quickstart model on a larger synthetic dataroot with a longer
# schedule (45 minutes of training on an idle 2-core CPU: NDS 0.231 / 0.378 / 0.441, mAP
# 0.124 / 0.383 / 0.467 at 1500 / 3000 / 4500 iterations). Data (about 4 minutes):
#   python tools/create_synthetic_nuscenes.py --root data/nuscenes_synthetic_large \
#       --num-scenes 150 --num-val-scenes 30
#   python tools/create_data.py nuscenes --root-path data/nuscenes_synthetic_large \
#       --out-dir data/nuscenes_synthetic_large
# (v1.0-trainval layout, 120 train / 30 val scenes of 12 key frames: 1440 / 360 samples)
_base_ = './bevformer_quickstart_synthetic.py'

data_root = 'data/nuscenes_synthetic_large/'
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl',
                     version='v1.0-trainval')
test_evaluator = val_evaluator

# 4500 steps (~6 passes over the 1440 samples), validation every 1500: 45 min 14 s, 0.5-0.6 s
# a step with the compiled deformable-attention kernel and NHWC images on an idle 2-core machine
# (0.8-1 s before them: 2500 steps then took 40 min 35 s for NDS 0.259, mAP 0.162).
max_iters = 4500
# Measured with the original's dropout 0.1 in the encoder and decoder (the quickstart drops it
# for its short schedule; not measured over this one), so it keeps it; and with the whole
# backbone training, BatchNorm statistics included (the quickstart freezes its stem and stage 1
# and the statistics, as the original does), so it keeps that too.
model = dict(
    img_backbone=dict(frozen_stages=-1, norm_eval=False),
    bev_encoder=dict(layer_cfg=dict(self_attn_cfg=dict(dropout=0.1),
                                    cross_attn_cfg=dict(dropout=0.1),
                                    ffn_cfg=dict(ffn_drop=0.1))),
    heads=dict(det=dict(decoder=dict(layer_cfg=dict(self_attn_cfg=dict(dropout=0.1),
                                                    cross_attn_cfg=dict(dropout=0.1),
                                                    ffn_cfg=dict(ffn_drop=0.1))))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 3, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, T_max=max_iters,
         eta_min_ratio=1e-2)
]
train_cfg = dict(max_iters=max_iters, val_interval=1500)
default_hooks = dict(checkpoint=dict(interval=1500))
