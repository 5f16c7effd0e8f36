"""Losses against hand-written loop references on tiny tensors (values and gradients)."""
import math

import pytest
import torch
import torch.nn.functional as F

from scale_toolkit.model import ScaleConfig
from scale_toolkit.model.losses import mcm_loss, mcm_terms, set_loss, symmetric_infonce
from scale_toolkit.model.objective import ssl_loss

TAU = 0.2


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1).requires_grad_(True)


def ref_lt(a, b, i, j_pos, cands, tau):
    """-log exp(a_i.b_pos/tau) / sum_{j in cands} exp(a_i.b_j/tau), written out by hand."""
    num = math.exp(float(a[i] @ b[j_pos]) / tau)
    den = sum(math.exp(float(a[i] @ b[j]) / tau) for j in cands)
    return -math.log(num / den)


def ref_lt_torch(a, b, i, j_pos, cands, tau):
    num = torch.exp(a[i] @ b[j_pos] / tau)
    den = sum(torch.exp(a[i] @ b[j] / tau) for j in cands)
    return -torch.log(num / den)


def test_symmetric_infonce_matches_eqs_2_to_4_values_and_grads():
    a, b = _unit(5, 8, seed=1), _unit(5, 8, seed=2)
    loss, _ = symmetric_infonce(a, b, TAU)
    a2, b2 = a.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    n = 5
    ref = sum(ref_lt_torch(a2, b2, i, i, range(n), TAU) + ref_lt_torch(b2, a2, i, i, range(n), TAU) for i in range(n)) / n
    assert torch.allclose(loss, ref, atol=1e-5)
    loss.backward(); ref.backward()
    assert torch.allclose(a.grad, a2.grad, atol=1e-5) and torch.allclose(b.grad, b2.grad, atol=1e-5)
    # Eq. 3 adds the two directions; "mean" (official code) halves it
    half, _ = symmetric_infonce(a.detach(), b.detach(), TAU, sym_reduction="mean")
    assert torch.allclose(half * 2, loss.detach(), atol=1e-6)
    # the symmetric term matters: it differs from one direction only
    one_dir = sum(ref_lt(a.detach(), b.detach(), i, i, range(n), TAU) for i in range(n)) / n
    assert abs(float(loss.detach()) - one_dir) > 1e-3


def test_set_loss_is_symmetric_infonce_over_videos():
    u1, u2 = _unit(6, 4, seed=3), _unit(6, 4, seed=4)
    loss, acc = set_loss(u1, u2, TAU)
    ref = sum(ref_lt(u1.detach(), u2.detach(), i, i, range(6), TAU) + ref_lt(u2.detach(), u1.detach(), i, i, range(6), TAU)
              for i in range(6)) / 6
    assert abs(float(loss.detach()) - ref) < 1e-5
    same, acc1 = set_loss(u1.detach(), u1.detach(), TAU)
    assert float(acc1) == 1.0


def test_mcm_terms_masked_only_against_all_targets_and_masked_predictions():
    n_tgt, d = 6, 4
    pred, tgt = _unit(3, d, seed=5), _unit(n_tgt, d, seed=6)
    pos = torch.tensor([4, 0, 2])  # masked clips' rows in the target pool
    terms, _ = mcm_terms(pred, tgt, pos, TAU, symmetric=True)
    p2, t2 = pred.detach().clone().requires_grad_(True), tgt.detach().clone().requires_grad_(True)
    ref = []
    for m in range(3):
        fwd = ref_lt_torch(p2, t2, m, int(pos[m]), range(n_tgt), TAU)  # vs every clip of the pool
        tg = t2[pos]  # reverse: the target against the predictions that exist (masked positions only)
        rev = ref_lt_torch(tg, p2, m, m, range(3), TAU)
        ref.append(fwd + rev)
    ref = torch.stack(ref)
    assert torch.allclose(terms, ref, atol=1e-5)
    terms.sum().backward(); ref.sum().backward()
    assert torch.allclose(pred.grad, p2.grad, atol=1e-5) and torch.allclose(tgt.grad, t2.grad, atol=1e-5)
    one_dir, _ = mcm_terms(pred.detach(), tgt.detach(), pos, TAU, symmetric=False)
    assert torch.all(one_dir < terms.detach())


def test_mcm_reductions():
    terms = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0])]
    hits = [torch.tensor([True, False, True]), torch.tensor([False])]
    paper, acc = mcm_loss(terms, hits, n_videos=2, reduction="paper")
    assert float(paper) == pytest.approx(10.0 / 2) and float(acc) == pytest.approx(0.5)
    mean, _ = mcm_loss(terms, hits, n_videos=2, reduction="mean")
    assert float(mean) == pytest.approx(2.5)


def reference_objective(u1, u2, target, pred_by_pos, mask, tau):
    """Eq. 8 = Eq. 6 (per set pool, masked-only, symmetric, sum per video, mean over videos) + Eq. 7."""
    b, _, k, _ = target.shape
    mcm = 0.0
    for s in range(2):
        t = target[:, s].reshape(b * k, -1)
        masked = [bi * k + ki for bi in range(b) for ki in range(k) if mask[bi, s, ki]]
        preds = torch.stack([pred_by_pos[(s, p)] for p in masked])
        for m, p in enumerate(masked):
            mcm = mcm + ref_lt_torch(preds, t, m, p, range(b * k), tau)
            mcm = mcm + ref_lt_torch(t[masked], preds, m, m, range(len(masked)), tau)
    mcm = mcm / b
    st = sum(ref_lt_torch(u1, u2, i, i, range(b), tau) + ref_lt_torch(u2, u1, i, i, range(b), tau) for i in range(b)) / b
    return mcm + st, mcm, st


def test_objective_matches_reference_values_and_grads():
    b, k, d = 3, 4, 5
    cfg = ScaleConfig(input_dim=8, hidden=16, heads=2, set_size=k, tau=TAU)
    mask = torch.zeros(b, 2, k, dtype=torch.bool)
    mask[0, 0, 1] = mask[1, 0, 3] = mask[2, 0, 0] = mask[2, 0, 2] = True
    mask[0, 1, 0] = mask[1, 1, 1] = mask[2, 1, 3] = True
    pos = [mask[:, s].reshape(-1).nonzero().squeeze(1) for s in range(2)]
    u1, u2, tgt = _unit(b, d, seed=7), _unit(b, d, seed=8), _unit(b, 2, k, d, seed=9)
    preds = [_unit(len(p), d, seed=10 + s) for s, p in enumerate(pos)]
    out = ssl_loss(cfg, u1, u2, tgt, preds, pos)
    leaves = [u1, u2, tgt, *preds]
    clones = [x.detach().clone().requires_grad_(True) for x in leaves]
    by_pos = {(s, int(p)): clones[3 + s][m] for s in range(2) for m, p in enumerate(pos[s])}
    ref, ref_mcm, ref_set = reference_objective(clones[0], clones[1], clones[2], by_pos, mask, TAU)
    assert torch.allclose(out["loss"], ref, atol=1e-4)
    assert torch.allclose(out["mcm_loss"], ref_mcm.detach(), atol=1e-4)
    assert torch.allclose(out["set_loss"], ref_set.detach(), atol=1e-4)
    out["loss"].backward(); ref.backward()
    for x, y in zip(leaves, clones):
        assert torch.allclose(x.grad, y.grad, atol=1e-5)
    # unmasked clips only enter as candidates: their target gradient is non-zero (negatives) ...
    assert tgt.grad[~mask].abs().sum() > 0


def test_loss_weights_and_normalisation():
    b, k, d = 2, 4, 3
    mask = torch.zeros(b, 2, k, dtype=torch.bool); mask[:, :, 0] = True
    pos = [mask[:, s].reshape(-1).nonzero().squeeze(1) for s in range(2)]
    args = (_unit(b, d, seed=1), _unit(b, d, seed=2), _unit(b, 2, k, d, seed=3), [_unit(2, d, seed=4), _unit(2, d, seed=5)], pos)
    base = ScaleConfig(input_dim=8, hidden=16, heads=2, set_size=k)
    o = ssl_loss(base, *args)
    w = ssl_loss(ScaleConfig(input_dim=8, hidden=16, heads=2, set_size=k, mcm_weight=2.0, set_weight=0.5), *args)
    assert torch.allclose(w["loss"], 2 * o["mcm_loss"] + 0.5 * o["set_loss"], atol=1e-5)
    nrm = ssl_loss(ScaleConfig(input_dim=8, hidden=16, heads=2, set_size=k, normalize_loss_weights=True), *args)
    assert torch.allclose(nrm["loss"], o["loss"] / 2, atol=1e-5)
