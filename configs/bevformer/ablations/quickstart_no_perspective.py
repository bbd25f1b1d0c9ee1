# Ablation of the quickstart recipe: no perspective supervision during BEV training (the
# backbone still starts from the shipped perspective pretraining and trains).
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(perspective_head=None)
