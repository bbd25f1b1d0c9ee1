# BEVFormer-tiny with a BEV map segmentation head next to the detection head, on real
# nuScenes. Labels: the nuScenes map expansion (data/nuscenes/maps/expansion/*.json, read by
# the devkit's NuScenesMap) rasterised at 100x100 over +-51.2 m (1.024 m cells): the 50x50
# BEV upsampled x2 by the head.
_base_ = './bevformer_tiny.py'

seg_classes = ['drivable_area', 'ped_crossing', 'walkway', 'divider']
upsample = 2
seg_labels = dict(type='LoadBEVSegLabels', classes=seg_classes, bev_h=50 * upsample,
                  bev_w=50 * upsample, pc_range=_base_.point_cloud_range,
                  data_root=_base_.data_root, map_version='v1.0-trainval')

model = dict(
    heads=dict(
        seg=dict(
            type='BEVSegHead', num_classes=len(seg_classes), feat_channels=128, num_convs=2,
            upsample_factor=upsample,
            loss_seg=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_dice=dict(type='DiceLoss', use_sigmoid=True, loss_weight=1.0))),
    head_loss_weights=dict(det=1.0, seg=1.0))

# The labels join each pipeline before PackBEVInputs (which packs gt_bev_seg).
train_pipeline = _base_.train_pipeline[:-1] + [seg_labels] + _base_.train_pipeline[-1:]
test_pipeline = _base_.test_pipeline[:-1] + [seg_labels] + _base_.test_pipeline[-1:]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [{{_base_.val_evaluator}}, dict(type='BEVSegMetric', classes=seg_classes)]
test_evaluator = val_evaluator
