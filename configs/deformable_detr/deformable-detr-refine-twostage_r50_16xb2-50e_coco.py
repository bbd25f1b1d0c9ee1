# Deformable DETR with iterative box refinement and two-stage proposals, R50, COCO.
_base_ = './deformable-detr-refine_r50_16xb2-50e_coco.py'
model = dict(as_two_stage=True)
