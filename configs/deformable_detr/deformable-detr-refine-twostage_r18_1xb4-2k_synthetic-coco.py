# The synthetic CPU config with iterative box refinement and two-stage proposals.
_base_ = './deformable-detr_r18_1xb4-2k_synthetic-coco.py'
model = dict(with_box_refine=True, as_two_stage=True)
