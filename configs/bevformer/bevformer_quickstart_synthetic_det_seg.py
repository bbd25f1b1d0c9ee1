# Joint 3D detection + BEV map segmentation on the synthetic quickstart: a BEVSegHead on
# the same B_t as the detection head. Map labels come from the generator's road layout
# (data/nuscenes_synthetic/maps/synthetic_layout.json), rasterised at 64x64 (1.6 m cells):
# the 32x32 BEV upsampled x2 by the head.
_base_ = './bevformer_quickstart_synthetic.py'

seg_classes = ['drivable_area', 'ped_crossing', 'walkway', 'divider']
upsample = 2
seg_labels = dict(type='LoadBEVSegLabels', classes=seg_classes, bev_h=32 * upsample,
                  bev_w=32 * upsample, pc_range=_base_.point_cloud_range,
                  data_root=_base_.data_root)

model = dict(
    heads=dict(
        seg=dict(
            type='BEVSegHead', num_classes=len(seg_classes), feat_channels=64, num_convs=1,
            upsample_factor=upsample,
            loss_seg=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_dice=dict(type='DiceLoss', use_sigmoid=True, loss_weight=1.0))),
    head_loss_weights=dict(det=1.0, seg=1.0))

# The labels join the pipeline before PackBEVInputs (which packs gt_bev_seg).
train_pipeline = _base_.train_pipeline[:-1] + [seg_labels] + _base_.train_pipeline[-1:]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_dataloader = val_dataloader

val_evaluator = [{{_base_.val_evaluator}}, dict(type='BEVSegMetric', classes=seg_classes)]
test_evaluator = val_evaluator
