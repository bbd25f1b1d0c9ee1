# nuScenes, six cameras, temporal queue (docs/data_format.md). Info files come from
#   python tools/create_data.py nuscenes --root-path data/nuscenes --version v1.0-trainval \
#       --out-dir data/nuscenes --can-bus-root data
# Images stay at 1600x900 here (BEVFormer-base); smaller models set the resize's scale.
dataset_type = 'NuScenesBEVDataset'
data_root = 'data/nuscenes/'
class_names = [
    'car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
    'bicycle', 'pedestrian', 'traffic_cone'
]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
backend_args = None

# The pipelines, written once. Normalisation and padding happen in the model's
# BEVDataPreprocessor. Variants edit a step, e.g. the image scale:
#   train_pipeline = [dict(t, scale_factor=0.5) if t['type'] == 'MultiViewResize' else t
#                     for t in _base_.train_pipeline]
train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True, backend_args=backend_args),
    dict(type='MultiViewPhotoMetricDistortion'),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewResize', scale_factor=1.0),
    dict(type='PackBEVInputs')
]
test_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True, backend_args=backend_args),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='MultiViewResize', scale_factor=1.0),
    dict(type='PackBEVInputs')
]

train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='nuscenes_infos_train.pkl',
        metainfo=dict(classes=class_names),
        pipeline=train_pipeline,
        queue_length=4,  # BEVFormer-base: the current frame and 3 earlier ones
        queue_sampling='random',
        filter_empty_gt=True,
        with_velocity=True,
        test_mode=False))
# Video-mode testing: frames in scene order, one contiguous block of frames per rank.
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='ContiguousVideoSampler'),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='nuscenes_infos_val.pkl',
        metainfo=dict(classes=class_names),
        pipeline=test_pipeline,
        queue_length=1,
        test_mode=True))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='NuScenesMetric',
    data_root=data_root,
    ann_file=data_root + 'nuscenes_infos_val.pkl',
    version='v1.0-trainval',
    classes=class_names)
test_evaluator = val_evaluator
