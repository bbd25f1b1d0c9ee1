# The released BEVFormer-base (bevformer_r101_dcn_24ep.pth; NDS 51.7 / mAP 41.6 on nuScenes
# val) after tools/model_converters/bevformer_official_to_mm.py, evaluated with the original's
# arithmetic (projects/bevformer/models/legacy.py). README: "Reproduce the model zoo".
_base_ = '../bevformer_base.py'

model = dict(
    bev_encoder=dict(legacy=dict()),
    heads=dict(det=dict(legacy=dict())))
load_from = None
