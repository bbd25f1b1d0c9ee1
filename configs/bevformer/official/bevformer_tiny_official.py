# The released BEVFormer-tiny (bevformer_tiny_epoch_24.pth; NDS 35.4 / mAP 25.2 on nuScenes
# val) after tools/model_converters/bevformer_official_to_mm.py, evaluated with the original's
# arithmetic (projects/bevformer/models/legacy.py). README: "Reproduce the model zoo".
_base_ = '../bevformer_tiny.py'

model = dict(
    img_backbone=dict(init_cfg=None),  # every weight comes from the converted checkpoint
    bev_encoder=dict(legacy=dict()),
    heads=dict(det=dict(legacy=dict())))
load_from = None
