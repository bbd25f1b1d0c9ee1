"""Deployment: ONNX export."""
