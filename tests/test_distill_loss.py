"""kd_loss reference values, T² scaling, masking, and the top-k remainder handling."""

import math

import pytest
import torch

from acoustic_kd.distill.loss import hard_ce, kd_loss, soft_kl
from acoustic_kd.distill.targets import densify, topk_targets

# student q = softmax(log[1, 2, 5]) = [1/8, 2/8, 5/8]; teacher p = [1/4, 1/4, 1/2]; label 2
Z = torch.log(torch.tensor([[1.0, 2.0, 5.0]]))
P = torch.tensor([[0.25, 0.25, 0.5]])
Y = torch.tensor([2])
CE_REF = -math.log(0.625)                                       # 0.470004
KL_REF = 0.25 * math.log(2.0) + 0.5 * math.log(0.5 / 0.625)     # 0.061715


def test_reference_value_hand_computed():
    got = kd_loss(Z, P, Y, T=1.0, alpha=0.5)
    assert got.item() == pytest.approx(0.5 * CE_REF + 0.5 * KL_REF, abs=1e-6)
    assert got.item() == pytest.approx(0.265859, abs=1e-5)


def test_alpha_one_is_cross_entropy():
    z = torch.randn(7, 11)
    y = torch.randint(0, 11, (7,))
    want = torch.nn.functional.cross_entropy(z, y)
    assert kd_loss(z, None, y, T=3.0, alpha=1.0).item() == pytest.approx(want.item(), abs=1e-6)


def test_T_squared_scaling():
    # logits 2·log[1,2,5] at T=2 give the same q, so the KL is KL_REF and the loss 4·KL_REF
    got = kd_loss(2 * Z, P, Y, T=2.0, alpha=0.0)
    assert got.item() == pytest.approx(4 * KL_REF, abs=1e-6)


def test_kl_zero_when_student_matches_teacher_and_gradient_matches_formula():
    z = torch.randn(5, 6, requires_grad=True)
    T = 3.0
    p = torch.softmax(torch.randn(5, 6) / T, -1)
    assert soft_kl(z.detach() * 0 + torch.log(p) * T, p, T).item() == pytest.approx(0, abs=1e-6)
    # d/dz [T²·KL] = T·(q − p) / B: without T² the soft-term gradient would shrink like 1/T
    loss = kd_loss(z, p, None, T=T, alpha=0.0)
    loss.backward()
    q = torch.softmax(z.detach() / T, -1)
    assert torch.allclose(z.grad, T * (q - p) / 5, atol=1e-6)


def test_mask_and_unlabelled_frames():
    z = torch.randn(2, 3, 4)
    p = torch.softmax(torch.randn(2, 3, 4), -1)
    y = torch.tensor([[0, 1, 2], [3, -1, 0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    full = kd_loss(z, p, y, T=2.0, alpha=0.3, mask=mask)
    keep = mask.flatten()
    zf, pf, yf = z.reshape(6, 4)[keep], p.reshape(6, 4)[keep], y.flatten()[keep]
    ce = hard_ce(zf[yf >= 0], yf[yf >= 0])       # label −1: KD term only
    kl = soft_kl(zf, pf, 2.0)                      # mask False: excluded from both
    assert full.item() == pytest.approx(0.3 * ce.item() + 0.7 * 4 * kl.item(), abs=1e-6)
    # padded frames cannot influence the loss
    z2 = z.clone()
    z2[0, 2] = 100.0
    assert kd_loss(z2, p, y, 2.0, 0.3, mask).item() == pytest.approx(full.item(), abs=1e-6)


def test_topk_remainder_as_one_class():
    """tail="rest": the KL over the k stored classes plus one merged remainder class."""
    torch.manual_seed(0)
    T, k = 3.0, 4
    p = torch.softmax(torch.randn(6, 12) * 2, -1)
    z = torch.randn(6, 12) * 3
    idx, pk = topk_targets(p, k)
    q = torch.softmax(z / T, -1)
    qk = q.gather(-1, idx.long())
    r, qr = 1 - pk.sum(-1), 1 - qk.sum(-1)
    ref = ((pk * (pk / qk).log()).sum(-1) + r * (r / qr).log()).mean()
    assert soft_kl(z, (idx, pk), T, tail="rest").item() == pytest.approx(ref.item(), abs=1e-5)
    # a student with the teacher's top-k probabilities and the right remainder mass, whatever the
    # shape of its tail, has KL 0 (the uniform tail would charge it for the shape)
    zs = torch.log(p) * T
    zs_tail = zs.clone().scatter(-1, idx.long(), float("inf"))   # the non-top-k entries
    shuffled = zs.clone()
    for i in range(6):                                            # permute the tail classes
        tail_ix = torch.nonzero(zs_tail[i] != float("inf")).flatten()
        shuffled[i, tail_ix] = zs[i, tail_ix[torch.randperm(len(tail_ix))]]
    assert soft_kl(shuffled, (idx, pk), T, tail="rest").item() == pytest.approx(0, abs=1e-5)
    assert soft_kl(shuffled, (idx, pk), T, tail="uniform").item() > 1e-3
    # its gradient leaves the student's tail shape alone: d/dz_c ∝ q_c within the tail
    zg = z.clone().requires_grad_(True)
    (T * T * soft_kl(zg, (idx, pk), T, tail="rest")).backward()
    g = zg.grad.scatter(-1, idx.long(), 0.0)
    ratio = g / q.scatter(-1, idx.long(), 1.0)
    tail_mask = torch.ones_like(q, dtype=torch.bool).scatter(-1, idx.long(), False)
    for i in range(6):
        vals = ratio[i][tail_mask[i]]
        assert torch.allclose(vals, vals[0].expand_as(vals), rtol=1e-4, atol=1e-6)
    # k = P: the dense loss; a bad name is an error
    assert soft_kl(z, topk_targets(p, 12), T, tail="rest").item() == pytest.approx(
        soft_kl(z, p, T).item(), abs=1e-5)
    with pytest.raises(ValueError, match="tail"):
        soft_kl(z, (idx, pk), T, tail="flat")


def test_topk_remainder_spread_uniformly():
    p = torch.tensor([[0.5, 0.3, 0.1, 0.1]])        # the tail really is uniform: top-2 is exact
    z = torch.randn(1, 4)
    t = topk_targets(p, 2)
    assert soft_kl(z, t, 2.0, tail="uniform").item() == pytest.approx(soft_kl(z, p, 2.0).item(),
                                                                      abs=1e-6)
    assert torch.allclose(densify(*t, num_pdfs=4), p)
    # a non-uniform tail: top-k equals the dense loss on the uniform-tail distribution
    p = torch.softmax(torch.randn(6, 9) * 2, -1)
    z = torch.randn(6, 9)
    t = topk_targets(p, 3)
    assert soft_kl(z, t, 1.5, tail="uniform").item() == pytest.approx(
        soft_kl(z, densify(*t, 9), 1.5).item(), abs=1e-5)
    # k = P is the dense loss
    t = topk_targets(p, 9)
    assert soft_kl(z, t, 1.5, tail="uniform").item() == pytest.approx(soft_kl(z, p, 1.5).item(), abs=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        kd_loss(Z, P, Y, T=0.0, alpha=0.5)
    with pytest.raises(ValueError):
        kd_loss(Z, None, Y, T=1.0, alpha=0.5)
