"""kd_loss reference values, T² scaling, masking, and the top-k remainder handling."""

import math

import pytest
import torch

from acoustic_kd.distill.loss import hard_ce, kd_loss, kd_loss_topk, soft_kl
from acoustic_kd.distill.targets import densify, topk_targets

# student q = softmax(log[1, 2, 5]) = [1/8, 2/8, 5/8]; teacher p = [1/4, 1/4, 1/2]; label 2
Z = torch.log(torch.tensor([[1.0, 2.0, 5.0]]))
P = torch.tensor([[0.25, 0.25, 0.5]])
Y = torch.tensor([2])
CE_REF = -math.log(0.625)                                       # 0.470004
KL_REF = 0.25 * math.log(2.0) + 0.5 * math.log(0.5 / 0.625)     # 0.061715
# label smoothing 0.1: target 0.9·onehot(2) + 0.1/3 on each class
LS_REF = 0.9 * CE_REF + 0.1 * (math.log(8) + math.log(4) + math.log(8 / 5)) / 3   # 0.554195


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


def test_fused_topk_loss_reference_value():
    """The fused path (top-k teacher, uniform tail, no mask) on the hand-computed example: k = P."""
    got = kd_loss(Z, topk_targets(P, 3), Y, T=1.0, alpha=0.5)
    assert got.item() == pytest.approx(0.5 * CE_REF + 0.5 * KL_REF, abs=1e-6)
    # k = 2: the remainder 1/4 sits on the one class left, i.e. the dense teacher again
    assert kd_loss_topk(Z, Y, topk_targets(P, 2), 1.0, 0.5).item() == pytest.approx(0.265859, abs=1e-5)
    assert kd_loss_topk(Z, Y, None, 1.0, 1.0).item() == pytest.approx(CE_REF, abs=1e-6)


def test_label_smoothing_hand_computed_on_the_hard_term_only():
    assert hard_ce(Z, Y, label_smoothing=0.1).item() == pytest.approx(LS_REF, abs=1e-6)
    assert LS_REF == pytest.approx(0.554195, abs=1e-6)
    for teacher in (P, topk_targets(P, 3), topk_targets(P, 2)):   # composed; fused k = P; k < P
        got = kd_loss(Z, teacher, Y, T=1.0, alpha=0.5, label_smoothing=0.1)
        assert got.item() == pytest.approx(0.5 * LS_REF + 0.5 * KL_REF, abs=1e-6)
        soft = kd_loss(Z, teacher, Y, T=2.0, alpha=0.0)              # the soft term is untouched
        assert kd_loss(Z, teacher, Y, T=2.0, alpha=0.0, label_smoothing=0.3).item() == soft.item()
    with pytest.raises(ValueError, match="label smoothing"):
        kd_loss(Z, P, Y, T=1.0, alpha=0.5, label_smoothing=1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("num_pdfs,k", [(40, 5), (40, 40), (600, 50)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_fused_topk_loss_equals_the_composed_loss(alpha, num_pdfs, k, dtype, ls):
    """Value and gradient of `kd_loss_topk` = α·hard_ce + (1−α)·T²·soft_kl (uniform tail), with
    unlabelled frames, a teacher whose float16 mass exceeds 1, leading dims and label smoothing."""
    g = torch.Generator().manual_seed(num_pdfs + k)
    T = 3.0
    z = (torch.randn(4, 16, num_pdfs, generator=g) * 3).to(dtype).requires_grad_(True)
    y = torch.randint(0, num_pdfs, (4, 16), generator=g)
    y[0, :5] = -1
    idx, p = topk_targets(torch.softmax(torch.randn(4, 16, num_pdfs, generator=g) * 2, -1), k)
    p = p.half().float()
    p[1, 0] = p[1, 0] + 0.01                      # Σp > 1: no remainder (clamped at 0)
    zf = z.detach().float().requires_grad_(True)     # the reference in float32 throughout
    want = zf.new_zeros(())
    if alpha > 0:
        want = want + alpha * hard_ce(zf, y, label_smoothing=ls)
    if alpha < 1:
        want = want + (1 - alpha) * T * T * soft_kl(zf, (idx, p), T)
    g_want, = torch.autograd.grad(want, zf)
    got = kd_loss_topk(z, y, (idx, p) if alpha < 1 else None, T, alpha, label_smoothing=ls)
    g_got, = torch.autograd.grad(got, z)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert g_got.dtype == dtype       # bf16: the float32 gradient rounded once (2^-8 relative)
    rtol = 1e-4 if dtype == torch.float32 else 2.0 ** -8
    assert torch.allclose(g_got.float(), g_want, atol=1e-7, rtol=rtol)


def test_fused_loss_without_frames_or_labels():
    z = torch.randn(0, 9, requires_grad=True)
    loss = kd_loss_topk(z, torch.zeros(0, dtype=torch.long), (torch.zeros(0, 3, dtype=torch.long),
                                                                torch.zeros(0, 3)), 2.0, 0.5)
    loss.backward()
    assert loss.item() == 0.0 and z.grad.shape == (0, 9)
    z = torch.randn(4, 9, requires_grad=True)   # every frame unlabelled: the CE term is 0
    p = torch.softmax(torch.randn(4, 9), -1)
    t = topk_targets(p, 9)
    got = kd_loss_topk(z, torch.full((4,), -1), t, 2.0, 0.5)
    assert got.item() == pytest.approx(0.5 * 4 * soft_kl(z, p, 2.0).item(), rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        kd_loss(Z, P, Y, T=0.0, alpha=0.5)
    with pytest.raises(ValueError):
        kd_loss(Z, None, Y, T=1.0, alpha=0.5)
    with pytest.raises(ValueError):
        kd_loss_topk(Z, None, topk_targets(P, 2), T=1.0, alpha=0.5)
