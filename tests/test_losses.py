"""The fused, chunked output layer + cross-entropy gives autograd's loss and gradients."""

import pytest
import torch
import torch.nn.functional as F

from tunesmith.train import losses
from tunesmith.train.losses import linear_cross_entropy


@pytest.mark.parametrize("weight_trains", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_matches_autograd(monkeypatch, weight_trains, with_bias):
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 7 * 50)  # 7 rows a chunk: 5 chunks
    torch.manual_seed(0)
    hidden = torch.randn(31, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=weight_trains)
    bias = torch.randn(50, requires_grad=weight_trains) if with_bias else None
    targets = torch.randint(0, 50, (31,))

    expected = F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="sum")
    wanted = [t for t in (hidden, weight, bias) if t is not None and t.requires_grad]
    expected_grads = torch.autograd.grad(expected * 0.37, wanted)
    got = linear_cross_entropy(hidden, weight, bias, targets)
    got_grads = torch.autograd.grad(got * 0.37, wanted)

    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    for a, b in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_without_gradients_only_the_loss(monkeypatch):
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 40)
    hidden, weight = torch.randn(9, 4), torch.randn(10, 4)
    targets = torch.randint(0, 10, (9,))
    with torch.no_grad():
        got = linear_cross_entropy(hidden, weight, None, targets)
    expected = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
