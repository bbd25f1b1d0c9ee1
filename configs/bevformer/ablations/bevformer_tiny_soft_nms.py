# Post-processing variant: class-aware BEV Soft-NMS (gaussian) on top of the NMS-free decoder.
_base_ = '../bevformer_tiny.py'
model = dict(heads=dict(det=dict(test_cfg=dict(_delete_=True, nms=dict(
    type='soft_nms', method='gaussian', iou_threshold=0.3, sigma=0.5, min_score=0.01,
    max_per_img=300)))))
