"""softmax_last_dim equals torch's softmax (values and gradients) to float rounding."""
import pytest
import torch

from projects.deformable_detr.ops import softmax_last_dim


@pytest.mark.parametrize('shape', [(3, 5, 8), (7, 2, 4, 32), (1, 1)])
def test_equals_torch_softmax(shape):
    torch.manual_seed(0)
    x = (torch.randn(*shape) * 30).requires_grad_()  # large logits: the max shift matters
    x_ref = x.detach().clone().requires_grad_()
    got, want = softmax_last_dim(x), x_ref.softmax(-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    g = torch.randn(*shape)
    got.backward(g)
    want.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_float64_is_exact_enough_for_gradcheck():
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(softmax_last_dim, (x, ))
