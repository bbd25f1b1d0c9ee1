# Deformable DETR (single stage, no refinement), R50, COCO 2017 at data/coco/:
# mmdet's config with our deformable encoder / decoder (same parameter names, so mmdet's
# checkpoints load).
_base_ = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'
default_scope = 'mmdet'
custom_imports = dict(imports=['projects.deformable_detr'], allow_failed_imports=False)
model = dict(type='DeformableDETR2D')
