# Joint 3D detection + BEV map segmentation on the synthetic quickstart: a BEVSegHead on
# the same B_t as the detection head. Map labels come from the generator's road layout
# (data/nuscenes_synthetic/maps/synthetic_layout.json), rasterised at 64x64 (1.6 m cells):
# the 32x32 BEV upsampled x2 by the head.
_base_ = './bevformer_quickstart_synthetic.py'

data_root = 'data/nuscenes_synthetic/'
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
seg_classes = ['drivable_area', 'ped_crossing', 'walkway', 'divider']
bev_size = 32
upsample = 2

model = dict(
    heads=dict(
        seg=dict(
            type='BEVSegHead', in_channels=64, bev_h=bev_size, bev_w=bev_size,
            num_classes=len(seg_classes), feat_channels=64, num_convs=1,
            upsample_factor=upsample,
            loss_seg=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_dice=dict(type='DiceLoss', use_sigmoid=True, loss_weight=1.0))),
    head_loss_weights=dict(det=1.0, seg=1.0))

train_pipeline = [
    dict(type='LoadMultiViewImages', to_float32=True),
    dict(type='FilterBEVInstances', point_cloud_range=point_cloud_range),
    dict(type='LoadBEVSegLabels', classes=seg_classes, bev_h=bev_size * upsample,
         bev_w=bev_size * upsample, pc_range=point_cloud_range, data_root=data_root),
    dict(type='MultiViewNormalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
         to_rgb=True),
    dict(type='MultiViewPad', size_divisor=32),
    dict(type='PackBEVInputs')
]
test_pipeline = train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [{{_base_.val_evaluator}}, dict(type='BEVSegMetric', classes=seg_classes)]
test_evaluator = val_evaluator
