# BEV map segmentation alone on the synthetic quickstart (the joint config without the
# detection head): the same encoder, seg head, labels and schedule.
_base_ = './bevformer_quickstart_synthetic_det_seg.py'

model = dict(
    perspective_head=None,  # box supervision on the images: a detection recipe
    heads=dict(_delete_=True, seg={{_base_.model.heads.seg}}),
    head_loss_weights=dict(_delete_=True, seg=1.0))
val_evaluator = dict(_delete_=True, type='BEVSegMetric', classes={{_base_.seg_classes}})
test_evaluator = val_evaluator
# Every frame has a map label: keep the frames without boxes too.
train_dataloader = dict(dataset=dict(filter_empty_gt=False))
