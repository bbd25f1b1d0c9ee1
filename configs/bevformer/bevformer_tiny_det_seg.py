# BEVFormer-tiny with a BEV map segmentation head next to the detection head, on real
# nuScenes. Labels: the nuScenes map expansion (data/nuscenes/maps/expansion/*.json, read by
# the devkit's NuScenesMap) rasterised at 100x100 over +-51.2 m (1.024 m cells): the 50x50
# BEV upsampled x2 by the head.
_base_ = './bevformer_tiny.py'

data_root = 'data/nuscenes/'
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
img_norm_cfg = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
seg_classes = ['drivable_area', 'ped_crossing', 'walkway', 'divider']
bev_size = 50
upsample = 2
seg_labels = dict(type='LoadBEVSegLabels', classes=seg_classes, bev_h=bev_size * upsample,
                  bev_w=bev_size * upsample, pc_range=point_cloud_range, data_root=data_root,
                  map_version='v1.0-trainval')

model = dict(
    heads=dict(
        seg=dict(
            type='BEVSegHead', in_channels=256, bev_h=bev_size, bev_w=bev_size,
            num_classes=len(seg_classes), feat_channels=128, num_convs=2,
            upsample_factor=upsample,
            loss_seg=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_dice=dict(type='DiceLoss', use_sigmoid=True, loss_weight=1.0))),
    head_loss_weights=dict(det=1.0, seg=1.0))

train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='MultiViewPhotoMetricDistortion'),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    seg_labels,
    dict(type='MultiViewResize', scale_factor=0.5),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
test_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    seg_labels,
    dict(type='MultiViewResize', scale_factor=0.5),
    dict(type='MultiViewNormalize', **img_norm_cfg),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [{{_base_.val_evaluator}}, dict(type='BEVSegMetric', classes=seg_classes)]
test_evaluator = val_evaluator
