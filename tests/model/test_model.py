"""The SCALE predictor: masking, positional MLP, inference API, save/load."""
import pytest
import torch

from scale_toolkit.errors import ScaleError
from scale_toolkit.model import ScaleConfig, ScaleModel, load_model, save_model
from scale_toolkit.model.masking import n_masked, sample_mask, sample_sets


def tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(input_dim=12, hidden=32, heads=4, head_hidden=48, proj_dim=16, pos_hidden=24)
    cfg.update(kw)
    return ScaleModel(ScaleConfig(**cfg)).eval()


def data(b=3, v=8, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, v, d, generator=g), torch.rand(b, v, 6, generator=g)


def test_masked_clip_feature_is_really_replaced():
    m = tiny()
    f, c = data()
    mask = torch.zeros(3, 8, dtype=torch.bool); mask[:, 2] = True; mask[1, 5] = True
    out = m(f, c, mask=mask)
    f2 = f.clone(); f2[mask] = torch.randn(int(mask.sum()), 12) * 100
    out2 = m(f2, c, mask=mask)
    assert torch.equal(out["refined"], out2["refined"]) and torch.equal(out["set_token"], out2["set_token"])
    # ... while without the mask the same change does change the outputs
    assert not torch.allclose(m(f, c)["refined"], m(f2, c)["refined"])
    # the masked position still knows where it is: same feature, different coordinates -> different output
    c2 = c.clone(); c2[:, 2] = torch.rand(3, 6)
    assert not torch.allclose(m(f, c2, mask=mask)["refined"][:, 2], out["refined"][:, 2])


def test_positional_mlp_is_used():
    m = tiny()
    f, c = data()
    perm = torch.tensor([3, 1, 0, 2, 7, 5, 6, 4])
    out = m(f, c)
    out_perm_coords = m(f, c[:, perm])
    assert not torch.allclose(out["refined"], out_perm_coords["refined"], atol=1e-4)
    assert not torch.allclose(out["set_token"], out_perm_coords["set_token"], atol=1e-4)
    # a set model: permuting clips together with their coordinates only permutes the outputs
    both = m(f[:, perm], c[:, perm])
    assert torch.allclose(both["refined"], out["refined"][:, perm], atol=1e-5)
    assert torch.allclose(both["set_token"], out["set_token"], atol=1e-5)


def test_encode_api_any_length_padding_and_mode():
    m = tiny(dropout=0.1)
    m.train()
    f, c = data(v=15)
    out = m.encode(f, c)
    assert out["clip"] is f and out["refined"].shape == (3, 15, 32) and out["set_token"].shape == (3, 32)
    assert m.training  # mode restored
    assert torch.allclose(m.encode(f, c)["set_token"], out["set_token"])  # eval: no dropout
    # padded clips marked invalid do not change the valid outputs
    fp = torch.cat([f, torch.randn(3, 4, 12)], 1); cp = torch.cat([c, torch.rand(3, 4, 6)], 1)
    valid = torch.zeros(3, 19, dtype=torch.bool); valid[:, :15] = True
    padded = m.encode(fp, cp, valid=valid)
    assert torch.allclose(padded["set_token"], out["set_token"], atol=1e-5)
    assert torch.allclose(padded["refined"][:, :15], out["refined"], atol=1e-5)
    assert m.encode(*data(v=1))["refined"].shape == (3, 1, 32)


def test_forward_is_differentiable_for_finetuning():
    m = tiny().train()
    f, c = data()
    out = m(f, c)["set_token"]
    (out * torch.randn_like(out)).sum().backward()  # a plain sum of the final LayerNorm's output is constant
    assert m.blocks[0].qkv.weight.grad is not None and m.in_proj.weight.grad.abs().sum() > 0


def test_dimension_mismatch_is_a_scale_error():
    m = tiny()
    with pytest.raises(ScaleError, match="input_dim"):
        m.encode(torch.randn(2, 4, 10), torch.rand(2, 4, 6))


def test_output_sparsity_prediction_head_sees_masked_tokens_only():
    m = tiny(set_size=4)
    seen = []
    m.pred_head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    f, c = torch.randn(5, 2, 4, 12), torch.rand(5, 2, 4, 6)
    mask = sample_mask(10, 4, 0.25, "fixed").view(5, 2, 4)
    idx = mask.reshape(-1).nonzero().squeeze(1)
    emb = m.ssl_embeddings(f, c, mask)
    assert seen == [int(mask.sum())] and emb["pred"].shape == (int(mask.sum()), 16)
    assert torch.allclose(emb["pred"].norm(dim=-1), torch.ones(len(idx)))
    assert emb["target"].shape == (5, 2, 4, 16) and emb["u1"].shape == (5, 16)


@pytest.mark.parametrize("mode,layers", [("fixed", 2), ("bernoulli", 2), ("fixed", 0)])
def test_sparse_last_block_equals_the_full_pass(mode, layers):
    """Output sparsity reaches into the last block (only SET and masked tokens are computed there):
    the embeddings and their gradients equal a full pass whose masked rows are picked afterwards."""
    m = tiny(set_size=8, mask_mode=mode, layers=layers).train()
    g = torch.Generator().manual_seed(1)
    f, c = torch.randn(6, 2, 8, 12, generator=g), torch.rand(6, 2, 8, 6, generator=g)
    mask = sample_mask(12, 8, 0.25, mode, g).view(6, 2, 8)
    emb = m.ssl_embeddings(f, c, mask)
    out = m(f.reshape(12, 8, 12), c.reshape(12, 8, 6), mask=mask.reshape(12, 8))
    refined = out["refined"].view(6, 2, 8, -1)
    rows = torch.cat([refined[:, s][mask[:, s]] for s in range(2)])  # set 1's masked clips, then set 2's
    pred = torch.nn.functional.normalize(m.pred_head(rows), dim=-1)
    u1 = torch.nn.functional.normalize(m.set_head_a(out["set_token"].view(6, 2, -1)[:, 0]), dim=-1)
    assert emb["pred"].shape == pred.shape
    assert torch.allclose(emb["pred"], pred, atol=1e-5) and torch.allclose(emb["u1"], u1, atol=1e-5)
    grads = []
    for loss in (emb["pred"].pow(3).sum() + emb["u1"].sum(), pred.pow(3).sum() + u1.sum()):
        m.zero_grad()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    # the two passes sum the same terms in another order: a bias gradient of -1.88 (a sum over
    # every masked row) differed by 3.5e-5 on an AVX-512 CPU; a wrong row would be off by O(1)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_masking_modes():
    g = torch.Generator().manual_seed(0)
    fixed = sample_mask(1000, 8, 0.25, "fixed", g)
    assert (fixed.sum(1) == 2).all() and n_masked(8, 0.25) == 2 and n_masked(8, 0.05) == 1
    bern = sample_mask(4000, 8, 0.25, "bernoulli", g)
    assert (bern.sum(1) >= 1).all() and abs(bern.float().mean().item() - 0.25) < 0.03
    assert bern.sum(1).unique().numel() > 2  # counts vary
    sets = sample_sets(50, 16, 8, g)
    assert sets.shape == (50, 2, 8)
    for row in sets.reshape(50, 16):
        assert row.unique().numel() == 16  # disjoint, all 16 clips used


def test_save_load_roundtrip(tmp_path):
    m = tiny(share_set_heads=True)
    save_model(m, tmp_path, extra={"store": {"feature_dim": 12}})
    m2, cfg = load_model(tmp_path)
    f, c = data()
    assert torch.equal(m.encode(f, c)["set_token"], m2.encode(f, c)["set_token"])
    assert cfg["model"]["input_dim"] == 12 and cfg["meta"]["store"]["feature_dim"] == 12
    with pytest.raises(ScaleError):
        load_model(tmp_path / "nope")


def test_config_validation_and_official_preset():
    with pytest.raises(ScaleError):
        ScaleConfig(mask_mode="random")
    with pytest.raises(ScaleError):
        ScaleConfig(hidden=100, heads=8)
    off = ScaleConfig.official(input_dim=64)
    m = ScaleModel(off)
    assert m.set_head_a is m.set_head_b and len(m.blocks[0].fc1.weight) == 512
    assert ScaleConfig.from_dict(off.to_dict()) == off
