"""tools/deployment/export_onnx.py: one frame of a seconds-sized BEVFormer exports to ONNX and
onnxruntime reproduces PyTorch over two consecutive frames (the second using the first's BEV)."""
import pytest
import torch

from tests.test_bevformer.tiny_bevformer import tiny_cfg
from tools.deployment import export_onnx

ort = pytest.importorskip('onnxruntime', reason='onnxruntime is in requirements.txt; '
                          'tools/setup.sh installs it')


def test_export_and_onnxruntime_match_pytorch(tmp_path, capsys):
    from projects.bevformer.apis import init_model
    cfg = tiny_cfg(str(tmp_path))
    torch.manual_seed(0)
    model = init_model(cfg)
    out = str(tmp_path / 'tiny.onnx')
    img_hw = (45, 80)
    wrapper = export_onnx.export(model, img_hw, out)
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == export_onnx.INPUT_NAMES
    frames = export_onnx.example_frames(model, img_hw, export_onnx.wrapper_pad(model, img_hw))
    enc = model.bev_encoder
    zeros = torch.zeros(1, enc.bev_h * enc.bev_w, enc.embed_dims)
    ours = export_onnx.run_torch(wrapper, frames, zeros)
    theirs = export_onnx.run_onnx(session, frames, zeros.numpy())
    errs = export_onnx.compare(ours, theirs)
    for t in range(2):
        assert errs[f'frame{t}.bev max abs'] < 1e-4
        assert errs[f'frame{t}.scores_3d max abs'] < 1e-5
        assert errs[f'frame{t}.bboxes_3d max abs'] < 1e-3
        assert errs[f'frame{t}.labels_3d mismatches'] == 0
    # The second frame really used the first one's BEV.
    assert not torch.allclose(ours[1][-1], export_onnx.run_torch(wrapper, frames[1:], zeros)[0][-1])
    # Legacy mode is refused with a reason.
    model.bev_encoder.legacy = type('L', (), {})()
    with pytest.raises(ValueError, match='legacy mode'):
        export_onnx.OneFrameBEVFormer(model, img_hw)


def test_cli(tmp_path, capsys):
    cfg = tiny_cfg(str(tmp_path))
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    out = str(tmp_path / 'cli.onnx')
    assert export_onnx.main([path, '--out', out, '--shape', '45', '80', '--check',
                             '--benchmark', '1']) == 0
    printed = capsys.readouterr().out
    assert 'frame1.bev max abs' in printed and 'onnxruntime' in printed
