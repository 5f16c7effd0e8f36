"""`--official` training: every resolved value, and one step's loss against a hand-written official-style loss."""
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from scale_toolkit.model import ScaleModel
from scale_toolkit.model.masking import sample_mask
from scale_toolkit.model.positions import official_positions
from scale_toolkit.train import TrainConfig, resolve_train_config, train
from scale_toolkit.train.step import SSLForward, draw_views, ssl_batch_losses
from tests.train.helpers import make_train_store, order_dataset


def test_official_resolved_config_has_every_official_value():
    cfg = resolve_train_config(True, model={"hidden": 64}, epochs=200)
    assert (cfg.lr, cfg.wd, cfg.grad_clip, cfg.precision) == (3e-4, 1e-4, 0.0, "fp32")
    assert math.isclose(cfg.warmup, 10.0)  # 5 % of 200 epochs
    m = cfg.model
    assert (m.hidden, m.heads, m.pos_hidden) == (64, 2, 128)  # heads = hidden/32, positional MLP 2 x hidden
    assert (m.mask_mode, m.mask_min_one, m.pos_input, m.pos_dim, m.init) == ("bernoulli", False, "official7", 7, "pytorch")
    assert (m.tau, m.proj_dim, m.share_set_heads, m.mcm_symmetric, m.mcm_pool_sets) == (0.2, 128, True, False, True)
    # the toolkit defaults are untouched, and a flag that was given wins over --official
    assert resolve_train_config(False) == TrainConfig()
    mine = resolve_train_config(True, lr=1e-3, grad_clip=1.0, model={"heads": 4})
    assert (mine.lr, mine.grad_clip, mine.model.heads, mine.wd) == (1e-3, 1.0, 4, 1e-4)


def test_official_init_masking_and_positions():
    model = ScaleModel(resolve_train_config(True, model={"input_dim": 48, "hidden": 64}).model)
    w = model.in_proj.weight
    bound = 1 / math.sqrt(48)  # PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too
    assert w.abs().max() <= bound and w.std() > 0.8 * bound / math.sqrt(3) and model.in_proj.bias.abs().max() > 0
    assert torch.all(model.set_token == 0) and model.pos_mlp[0].in_features == 7
    mask = sample_mask(4096, 8, 0.25, "bernoulli", torch.Generator().manual_seed(0), min_one=False)
    empty = (~mask.any(1)).float().mean().item()
    assert abs(empty - 0.75 ** 8) < 0.02  # sets with no masked clip occur, at the Bernoulli rate
    assert sample_mask(4096, 8, 0.25, "bernoulli", torch.Generator().manual_seed(0)).any(1).all()
    coords = np.array([[[0.1, 0.2, 0.0, 0.6, 0.9, 0.3], [0.3, 0.2, 0.5, 0.8, 0.9, 0.8]]], np.float32)
    pos = official_positions(coords, np.array([[False, True]]))
    # [flip, y0, x0, y1, x1, t0, t1] min-max over the video's clips; x0 and x1 never change -> 0
    assert pos.tolist() == [[[0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 1, 0, 1, 1]]]


def _mlp(seq, x):
    """Linear layers of a head with GELU between them, by hand."""
    lins = [m for m in seq if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(lins):
        x = F.linear(x, lin.weight, lin.bias)
        if i < len(lins) - 1:
            x = F.gelu(x)
    return x


def _block(blk, h):
    """Pre-LN block (attention then GELU MLP), by hand from its weights."""
    b, t, c = h.shape
    nh, hd = blk.heads, c // blk.heads
    y = F.layer_norm(h, (c,), blk.norm1.weight, blk.norm1.bias)
    q, k, v = F.linear(y, blk.qkv.weight, blk.qkv.bias).view(b, t, 3, nh, hd).permute(2, 0, 3, 1, 4)
    a = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).softmax(-1) @ v
    h = h + F.linear(a.transpose(1, 2).reshape(b, t, c), blk.proj.weight, blk.proj.bias)
    y = F.layer_norm(h, (c,), blk.norm2.weight, blk.norm2.bias)
    return h + F.linear(F.gelu(F.linear(y, blk.fc1.weight, blk.fc1.bias)), blk.fc2.weight, blk.fc2.bias)


def _official_loss(model, x, pos, mask, tau=0.2):
    """The official code's loss as its description reads: x [B, 2, K, D], pos [B, 2, K, 7], mask [B, 2, K]."""
    b, s, k, d = x.shape
    xs, m = x.reshape(b * s, k, d), mask.reshape(b * s, k)
    h = F.linear(xs, model.in_proj.weight, model.in_proj.bias)
    h = torch.where(m[..., None], model.msk_token, h)
    p1, p2 = model.pos_mlp[0], model.pos_mlp[2]
    h = h + F.linear(F.relu(F.linear(pos.reshape(b * s, k, -1), p1.weight, p1.bias)), p2.weight, p2.bias)
    h = torch.cat([model.set_token.expand(b * s, 1, -1), h], 1)
    for blk in model.blocks:
        h = _block(blk, h)
    h = F.layer_norm(h, (h.shape[-1],), model.norm.weight, model.norm.bias)
    z = F.normalize(_mlp(model.set_head_a, h[:, 0]), dim=-1).view(b, s, -1)
    logits = z[:, 0] @ z[:, 1].T / tau
    set_loss = ((-logits.log_softmax(1).diag()) + (-logits.log_softmax(0).diag())).mean() / 2
    target = F.normalize(_mlp(model.target_head, xs), dim=-1).reshape(b * s * k, -1)
    pred = F.normalize(_mlp(model.pred_head, h[:, 1:]), dim=-1).reshape(b * s * k, -1)
    dense = -(pred @ target.T / tau).log_softmax(1).diag()[m.reshape(-1)].mean()
    return (set_loss + dense) / 2


def test_official_step_loss_equals_hand_written_official_loss():
    feats_np, coords_np, _ = order_dataset(12, d=24)
    flip = np.random.default_rng(0).random(feats_np.shape[:2]) < 0.5
    cfg = resolve_train_config(True, model={"input_dim": 24, "hidden": 64})
    torch.manual_seed(0)
    model = ScaleModel(cfg.model).eval()  # dropout off: both sides see the same network
    feats = torch.from_numpy(feats_np)
    coords = torch.from_numpy(official_positions(coords_np, flip))
    idx = torch.arange(12)
    sets, mask = draw_views(cfg.model, 12, 16, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert not mask.reshape(24, 8).any(1).all()  # this draw has a set without a masked clip
    ours = ssl_batch_losses(SSLForward(model), cfg.model, feats, coords, idx, sets, mask, 0, 12)["loss"]
    clip = sets.reshape(12, 16)
    x = feats[idx[:, None], clip].float().view(12, 2, 8, -1)
    pos = coords[idx[:, None], clip].view(12, 2, 8, 7)
    ref = _official_loss(model, x, pos, mask)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours.item(), ref.item())


def test_official_training_run_writes_the_official_config(tmp_path):
    make_train_store(tmp_path / "train.zarr")
    cfg = resolve_train_config(True, model={"hidden": 32}, store=str(tmp_path / "train.zarr"), out=str(tmp_path / "run"),
                               epochs=2, batch_size=12, device="cpu")
    summary = train(cfg)
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["train"]["grad_clip"] == 0.0 and conf["train"]["precision"] == "fp32" and conf["train"]["lr"] == 3e-4
    assert conf["model"]["pos_input"] == "official7" and conf["effective"]["warmup_steps"] == round(0.1 * 3)
    assert np.isfinite(summary["final"]["loss"])
