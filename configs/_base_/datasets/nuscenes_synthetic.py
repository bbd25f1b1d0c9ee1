# The synthetic nuScenes dataroot (CPU quickstart), same format as the real one:
#   python tools/create_synthetic_nuscenes.py --root data/nuscenes_synthetic
#   python tools/create_data.py nuscenes --root-path data/nuscenes_synthetic \
#       --version v1.0-mini --out-dir data/nuscenes_synthetic
# Images are 320x180 (image_scale 0.2), padded to 320x192; no photometric distortion so the
# pipeline stays cheap and deterministic; a 3-frame queue as in BEVFormer-tiny.
_base_ = './nuscenes.py'

data_root = 'data/nuscenes_synthetic/'

train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]),
    dict(type='MultiViewNormalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
         to_rgb=True),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline, queue_length=3))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(
    data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl', version='v1.0-mini')
test_evaluator = val_evaluator
