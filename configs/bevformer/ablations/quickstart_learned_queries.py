# Ablation of the quickstart recipe: the original's learned object queries instead of queries
# from the BEV heatmap's peaks (no heatmap head, no loss_heatmap).
_base_ = '../bevformer_quickstart_synthetic.py'

model = dict(heads=dict(det=dict(query_init=None)))
