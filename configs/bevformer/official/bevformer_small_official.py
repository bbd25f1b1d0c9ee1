# The released BEVFormer-small (bevformer_small_epoch_24.pth; NDS 47.9 / mAP 37.0 on nuScenes
# val) after tools/model_converters/bevformer_official_to_mm.py, evaluated with the original's
# arithmetic (projects/bevformer/models/legacy.py). README: "Reproduce the model zoo".
_base_ = '../bevformer_small.py'

model = dict(
    bev_encoder=dict(legacy=dict()),
    heads=dict(det=dict(legacy=dict())))
load_from = None
