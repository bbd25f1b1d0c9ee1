# The synthetic nuScenes dataroot (CPU quickstart), same format as the real one:
#   python tools/create_synthetic_nuscenes.py --root data/nuscenes_synthetic
#   python tools/create_data.py nuscenes --root-path data/nuscenes_synthetic \
#       --version v1.0-trainval --out-dir data/nuscenes_synthetic
# (the generator's defaults: v1.0-trainval layout, 40 train / 10 val scenes of 12 key frames,
# 480 / 120 samples; a mini-sized 8-scene training set is memorised, not learned)
# Images are 320x180 (image_scale 0.2), padded to 320x192 by the model's preprocessor; no
# photometric distortion (training uses the test pipeline) so the pipeline stays cheap and
# deterministic; a 3-frame queue as in BEVFormer-tiny.
_base_ = './nuscenes.py'

data_root = 'data/nuscenes_synthetic/'
train_pipeline = _base_.test_pipeline

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline, queue_length=3))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

val_evaluator = dict(
    data_root=data_root, ann_file=data_root + 'nuscenes_infos_val.pkl', version='v1.0-trainval')
test_evaluator = val_evaluator
