"""Training-step throughput of SCALE: a plainly written naive baseline vs the toolkit.

Paper configuration by default: D=768 features, 16 cached clips (8 + 8), hidden 256,
2 layers, batch 512. Both sides run the same objective (MCM + SET, symmetric InfoNCE)
with the same architecture and optimizer; they differ only in how it is computed:

  naive   : fp32, Python-side batching (per-sample numpy indexing, permutation and
            masking, then stacking), prediction head on every token, torch.nn.TransformerEncoder.
  toolkit : scale_toolkit.train step as `scale train` ships it: resident float16 store indexed
            on the device, `--precision auto` (bf16 autocast only where the machine computes
            bf16 natively, else fp32: scale_toolkit.precision), output sparsity (the last block
            and the prediction head compute the SET and masked tokens only), fused AdamW.
  toolkit_fp32 : the same step forced to fp32 (measured only where auto picks bf16; where auto
            picks fp32 the toolkit side already is the fp32 comparison).
  toolkit_compiled (--compile): the shipped step as `scale train --compile` runs it
            (torch.compile of forward + losses); the compile time is reported apart.
  official (--official-src DIR, a checkout of the official SCALE code's src/ folder, which this
            repository does not ship): its training loop as its train.py runs it, on this device
            and in fp32: its own Scale model and loss at the paper's size (heads as released),
            a DataLoader over the resident TensorDataset, random 2 x 8 views, (SET + dense) / 2,
            AdamW and a per-step LambdaLR.

Also measured in the same run: a plain matmul in the toolkit side's precision (and in bf16 where
bf16 is native), and the FLOP count of one toolkit step (torch.utils.flop_counter, cross-checked
by a hand count of the matmuls the method needs), giving the achieved fraction of matmul FLOP/s;
the naive step's FLOPs too. The JSON and the first printed line name the CPU (torch's capability,
its bf16 units, the model name) and the precision of each side with its reason.
The naive MCM logits are those of the masked predictions only (like the toolkit's); the
prediction head on every token is the naive side's extra work.

Each side runs in its own spawned process, idle between its steps; the parent sends one step
request per side per round and times the matmuls itself, so the rounds interleave all sides.
OMP_WAIT_POLICY defaults to PASSIVE for every process (see below). --malloc sets which sides
keep freed host memory for reuse: as-shipped (default: the toolkit sides, as `scale train`
does, against a naive side with glibc's defaults, as plain code has), both (the conservative
comparison: the naive side gets the toolkit's setting too) or none. The JSON records both
settings and the 1-minute load average.

    python benchmarks/train_throughput.py                      # CPU, batch 512, a few minutes on any CPU
    python benchmarks/train_throughput.py --malloc both        # naive side with the same allocator setting
    python benchmarks/train_throughput.py --device cuda --batch-size 2048
"""
from __future__ import annotations

import os

# Before torch loads its OpenMP runtime: on a machine whose cores are shared with other jobs,
# busy-waiting OpenMP threads stall every small parallel op until the descheduled sibling
# thread runs again (measured here: a 1M-element bf16->fp32 copy took 1.7 ms instead of 0.17 ms
# with 2 threads at load ~2). PASSIVE applies to every side of the benchmark alike (the naive
# baseline gains from it too). Override with OMP_WAIT_POLICY=ACTIVE in the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import json
import multiprocessing as mp
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from scale_toolkit.model import ScaleConfig, ScaleModel
from scale_toolkit.model.masking import n_masked
from scale_toolkit.precision import CpuReport, resolve_precision
from scale_toolkit.runtime import resolve_device
from scale_toolkit.train.host_memory import reuse_freed_memory
from scale_toolkit.train.step import SSLForward, draw_views, fp32_matmul_precision, make_loss_fn
from scale_toolkit.train.trainer import param_groups


# ----------------------------------------------------------------------------- naive baseline
class NaiveScale(nn.Module):
    """The SCALE model written plainly: same sizes, prediction head applied to every token."""

    def __init__(self, d: int, h: int, layers: int, heads: int, mlp_ratio: float, head_hidden: int, proj: int):
        super().__init__()
        self.in_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.in_proj = nn.Linear(d, h)
        self.pos = nn.Sequential(nn.Linear(6, h), nn.GELU(), nn.Linear(h, h))
        self.msk = nn.Parameter(torch.randn(h) * 0.02)
        self.cls = nn.Parameter(torch.randn(h) * 0.02)
        layer = nn.TransformerEncoderLayer(h, heads, int(h * mlp_ratio), dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)

        def head(i):
            return nn.Sequential(nn.Linear(i, head_hidden), nn.GELU(), nn.Linear(head_hidden, head_hidden),
                                 nn.GELU(), nn.Linear(head_hidden, proj))

        self.pred_head, self.target_head, self.set_a, self.set_b = head(h), head(d), head(h), head(h)
        self.target_norm = nn.LayerNorm(d, elementwise_affine=False)

    def loss(self, feats, coords, mask, tau=0.1):
        # feats [B, 2, K, D], coords [B, 2, K, 6], mask [B, 2, K]
        b, _, k, d = feats.shape
        x = self.in_proj(self.in_norm(feats))
        x = torch.where(mask[..., None], self.msk.expand_as(x), x) + self.pos(coords)
        x = x.reshape(b * 2, k, -1)
        x = torch.cat([self.cls.expand(b * 2, 1, -1), x], 1)
        y = self.norm(self.encoder(x))
        cls, tok = y[:, 0].reshape(b, 2, -1), y[:, 1:].reshape(b, 2, k, -1)
        pred = F.normalize(self.pred_head(tok), dim=-1)  # every token
        tgt = F.normalize(self.target_head(self.target_norm(feats)), dim=-1)
        mcm = 0.0
        for s in range(2):
            p, t, m = pred[:, s].reshape(b * k, -1), tgt[:, s].reshape(b * k, -1), mask[:, s].reshape(-1)
            idx = m.nonzero().squeeze(1)
            logits = p[idx] @ t.t() / tau  # masked predictions against every target of the set
            fwd = F.cross_entropy(logits, idx, reduction="sum")
            logits_r = t[idx] @ p[idx].t() / tau
            rev = F.cross_entropy(logits_r, torch.arange(len(idx), device=logits_r.device), reduction="sum")
            mcm = mcm + (fwd + rev) / b
        u1 = F.normalize(self.set_a(cls[:, 0]), dim=-1)
        u2 = F.normalize(self.set_b(cls[:, 1]), dim=-1)
        s = u1 @ u2.t() / tau
        lab = torch.arange(b, device=s.device)
        return mcm + F.cross_entropy(s, lab) + F.cross_entropy(s.t(), lab)


def naive_batch(feats_np, coords_np, batch, k, n_mask):
    """Python-side batching: one sample at a time."""
    fs, cs, ms = [], [], []
    for _ in range(batch):
        i = random.randrange(len(feats_np))
        perm = np.random.permutation(feats_np.shape[1])[: 2 * k]
        fs.append(torch.from_numpy(feats_np[i, perm].astype(np.float32)).view(2, k, -1))
        cs.append(torch.from_numpy(coords_np[i, perm]).view(2, k, 6))
        m = torch.zeros(2, k, dtype=torch.bool)
        for s in range(2):
            m[s, np.random.choice(k, n_mask, replace=False)] = True
        ms.append(m)
    return torch.stack(fs), torch.stack(cs), torch.stack(ms)


def analytic_step_flops(cfg: ScaleConfig, b: int) -> int:
    """Matmul FLOPs one toolkit SSL step needs at this config (forward + backward), by hand.

    Cross-checks ``torch.utils.flop_counter``. Counts what the method requires: every Linear
    forward, its weight gradient, and its input gradient unless the input is the frozen
    feature / coordinate (no gradient needed); attention products; the InfoNCE logits. Written
    for the default objective (per-set MCM pools, symmetric, output sparsity in the last block
    and the prediction head, fixed masking); no elementwise ops.
    """
    k, h, d, p = cfg.set_size, cfg.hidden, cfg.input_dim, cfg.proj_dim
    t = b * 2 * k                      # clip tokens of both sets
    seq, ln = b * 2, k + 1             # sequences, tokens per sequence (SET token + K clips)
    m = b * n_masked(k, cfg.mask_ratio)  # masked clips per set

    def lin(n, i, o, igrad=True):
        return 2 * n * i * o * (3 if igrad else 2)

    def head(n, i, hid, layers, igrad=True):
        dims = [i] + [hid] * (layers - 1) + [p]
        return sum(lin(n, dims[j], dims[j + 1], igrad or j > 0) for j in range(layers))

    pl, ph = cfg.pred_head_layers or cfg.head_layers, cfg.pred_head_hidden or cfg.head_hidden
    mlp = int(h * cfg.mlp_ratio)

    def blk(queries):  # a block whose outputs are needed at `queries` tokens per sequence
        return (lin(seq * ln, h, 2 * h) + lin(seq * queries, h, h)        # k, v of every token; q
                + lin(seq * queries, h, h) + lin(seq * queries, h, mlp) + lin(seq * queries, mlp, h)
                + 3 * 2 * (2 * seq * queries * ln * h))  # q.k and a.v, forward + 2 backward products

    total = lin(t, d, h, igrad=False) + lin(t, 6, cfg.pos_hidden, igrad=False) + lin(t, cfg.pos_hidden, h)
    if cfg.layers:  # output sparsity: the last block computes the SET and masked tokens only
        total += (cfg.layers - 1) * blk(ln) + blk(1 + n_masked(k, cfg.mask_ratio))
    total += head(t, d, cfg.head_hidden, cfg.head_layers, igrad=False)   # target head, all clips
    total += head(2 * m, h, ph, pl) + 2 * head(b, h, ph, pl)             # prediction (masked), SET heads
    total += 2 * 3 * (2 * m * (b * k) * p)   # MCM logits per set (the reverse direction reuses them)
    total += 3 * (2 * b * b * p)             # SET logits (both directions share them)
    return total


# ----------------------------------------------------------------------------- sides, one process each
def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def synthetic_store(a):
    """The same random float16 store in every process (seeded)."""
    rng = np.random.default_rng(0)
    feats_np = rng.standard_normal((a.videos, a.clips, a.dim)).astype(np.float16)
    lo = rng.random((a.videos, a.clips, 3)) * 0.5
    return feats_np, np.concatenate([lo, lo + 0.5], -1).astype(np.float32)


def build_side(name: str, a, dev: torch.device):
    """(step function, FLOPs of one step) of the side ``name``: toolkit, toolkit_fp32, toolkit_compiled, naive or official."""
    feats_np, coords_np = synthetic_store(a)
    torch.manual_seed(0)
    if name == "official":
        step = official_step(a, dev, feats_np, coords_np)
    elif name == "naive":
        step = naive_step(a, dev, feats_np, coords_np)
    else:
        step = toolkit_step(name, a, dev, feats_np, coords_np)
    with FlopCounterMode(display=False) as fc:  # also the first (compiling) step
        step()
    return step, fc.get_total_flops()


def naive_step(a, dev: torch.device, feats_np, coords_np):
    """One step of the plainly written baseline: Python-side batching, fp32, TransformerEncoder."""
    cfg = ScaleConfig(input_dim=a.dim, hidden=a.hidden, layers=a.layers)
    random.seed(0)
    np.random.seed(0)
    naive = NaiveScale(a.dim, a.hidden, a.layers, cfg.heads, cfg.mlp_ratio, cfg.head_hidden, cfg.proj_dim).to(dev)
    opt = torch.optim.AdamW(naive.parameters(), lr=1e-4)
    n_mask = n_masked(cfg.set_size, cfg.mask_ratio)

    def step():
        feats, coords, mask = naive_batch(feats_np, coords_np, a.batch_size, cfg.set_size, n_mask)
        loss = naive.loss(feats.to(dev), coords.to(dev), mask.to(dev))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(naive.parameters(), 1.0)
        opt.step()
    return step


def toolkit_step(name: str, a, dev: torch.device, feats_np, coords_np):
    """One step as `scale train` runs it (resident store, the side's precision, compiled for toolkit_compiled)."""
    cfg = ScaleConfig(input_dim=a.dim, hidden=a.hidden, layers=a.layers)
    b = a.batch_size
    feats = torch.from_numpy(feats_np).to(dev)
    coords = torch.from_numpy(coords_np).to(dev)
    amp = resolve_precision(side_precision(name, a), dev).autocast_dtype
    model = ScaleModel(cfg).to(dev)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4, fused=dev.type in ("cpu", "cuda"))
    loss_fn = make_loss_fn(SSLForward(model), cfg, feats, coords, compile=name == "toolkit_compiled")
    gen = torch.Generator(device=dev)
    gen.manual_seed(0)

    def step():
        idx = torch.randint(0, a.videos, (b,), generator=gen, device=dev)
        sets, mask = draw_views(cfg, b, a.clips, gen, dev)
        with fp32_matmul_precision(dev, amp):
            out = loss_fn(idx, sets, mask, 0, b, 1, amp)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return step


def official_step(a, dev: torch.device, feats_np, coords_np):
    """One iteration of the official training loop, its model imported from ``a.official_src``."""
    sys.path.insert(0, a.official_src)
    from scale import Scale  # the official model, from the user's checkout (not part of this repository)

    Scale.mask_ratio = 0.25  # its __init__ asserts on the attribute before setting it (a defect of the release)
    torch.manual_seed(0)
    model = Scale(a.dim, hidden_size=a.hidden, num_layers=a.layers, set_dim=128, set_temperature=0.2, mask_ratio=0.25,
                  dense_dim=128, dense_temperature=0.2, mlp_ratio=2.0, drop=0.1, attn_drop=0.1).train().to(dev)
    opt = torch.optim.AdamW(param_groups(model, 1e-4), lr=3e-4, foreach=True)  # its multi-tensor AdamW
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)  # stepped every iteration, as there
    flip = np.zeros(coords_np.shape[:2] + (1,), np.float32)  # its 7-entry position: [flip, box, time]
    data = torch.utils.data.TensorDataset(torch.from_numpy(feats_np).to(dev),
                                          torch.from_numpy(np.concatenate([flip, coords_np], -1)).to(dev))
    loader = torch.utils.data.DataLoader(data, shuffle=True, batch_size=a.batch_size, drop_last=True)
    batches = iter(())
    k = 8

    def step():
        nonlocal batches
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        x, pos = batch
        keep = torch.rand(x.shape[0], x.shape[1], device=dev).argsort(1)[:, :2 * k]  # two random views of k clips
        x = x.gather(1, keep[..., None].expand(-1, -1, x.shape[-1])).view(x.shape[0], 2, k, -1)
        pos = pos.gather(1, keep[..., None].expand(-1, -1, pos.shape[-1])).view(pos.shape[0], 2, k, -1)
        opt.zero_grad(set_to_none=True)
        out = model(x.float(), pos)
        ((out["set_loss"] + out["dense_loss"]) / 2).backward()
        opt.step()
        sched.step()
    return step


def side_precision(name: str, a) -> str:
    """The --precision a side runs with: the baselines are plain fp32; the toolkit as shipped."""
    return "fp32" if name in ("naive", "official", "toolkit_fp32") else a.precision


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.machine())
    except OSError:
        return platform.processor() or platform.machine()


def reuses_memory(name: str, policy: str) -> bool:
    return policy == "both" or (policy == "as-shipped" and name.startswith("toolkit"))


def side_worker(name: str, a, conn) -> None:
    """A side in its own process: built with its allocator policy, then one timed step per request."""
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    with contextlib.ExitStack() as stack:
        reuse = stack.enter_context(reuse_freed_memory(dev)) if reuses_memory(name, a.malloc) else False
        t = time.perf_counter()
        step, flops = build_side(name, a, dev)
        sync(dev)
        conn.send({"flops": flops, "build_s": time.perf_counter() - t, "malloc_reuse": reuse})
        while conn.recv() == "step":
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            sync(dev)
            t = time.perf_counter()
            step()
            sync(dev)
            peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
            conn.send((time.perf_counter() - t, peak))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--videos", type=int, default=2048, help="size of the synthetic store")
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                    help="the toolkit side's precision (default auto, as `scale train` ships)")
    ap.add_argument("--steps", type=int, default=6, help="measurement rounds (each: one toolkit step, one naive step, matmuls)")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--official-src", default=None, metavar="DIR",
                    help="also measure the official SCALE training loop from a checkout of its src/ folder")
    ap.add_argument("--compile", action="store_true",
                    help="also measure the toolkit step under torch.compile (scale train --compile)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--malloc", default="as-shipped", choices=["as-shipped", "both", "none"],
                    help="which sides keep freed host memory for reuse (scale_toolkit.train.host_memory): "
                         "as-shipped (the toolkit sides, as `scale train` does; the naive side keeps "
                         "glibc's defaults, as plain code does); both (the conservative comparison); none")
    ap.add_argument("--json", default=None, help="write the results here")
    return ap.parse_args(argv)


def machine(a, dev: torch.device, cpu: CpuReport) -> dict:
    """The result's header: the machine, its load, the settings and the sizes measured."""
    res = {"device": str(dev), "cpu": cpu_model(), "cpu_capability": cpu.capability, "avx512_bf16": cpu.avx512_bf16,
           "amx": cpu.amx, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "malloc": a.malloc,
           "load_avg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__, "batch_size": a.batch_size, "dim": a.dim,
           "clips": a.clips, "hidden": a.hidden, "layers": a.layers}
    if dev.type == "cuda":
        res["gpu"] = torch.cuda.get_device_name(dev)
    return res


def side_names(a, shipped) -> list[str]:
    """The sides measured: the toolkit, its fp32 twin where auto picks bf16, the optional ones."""
    return (["toolkit"] + (["toolkit_fp32"] if shipped.value == "bf16" else [])
            + (["toolkit_compiled"] if a.compile else []) + ([] if a.skip_naive else ["naive"])
            + (["official"] if a.official_src else []))


def matmul_size(dev: torch.device) -> int:
    return 2048 if dev.type == "cpu" else 8192


def matmul_sides(dev: torch.device, shipped) -> list:
    """(name, timed run) of a plain n x n matmul in fp32, and in bf16 where bf16 is the shipped precision
    (emulated bf16 takes ~10 s per product)."""
    n = matmul_size(dev)
    dtypes = [torch.float32] + ([torch.bfloat16] if shipped.value == "bf16" else [])

    def timed(x, y):
        def run():
            sync(dev)
            t = time.perf_counter()
            x @ y
            sync(dev)
            return time.perf_counter() - t, None
        return run

    return [("mm_" + {torch.float32: "fp32", torch.bfloat16: "bf16"}[dt],
             timed(torch.randn(n, n, device=dev, dtype=dt), torch.randn(n, n, device=dev, dtype=dt))) for dt in dtypes]


def remote_step(conn):
    """A timed run of one step of the side behind ``conn`` (its own process)."""
    def run():
        conn.send("step")
        return conn.recv()
    return run


def measure(a, dev: torch.device, names: list[str], shipped) -> tuple[dict, dict, dict]:
    """Start every side in its own process, then time them round by round with the matmuls.

    Returns (each side's build report, every run's seconds per name, peak GPU memory per name)."""
    # Each side runs in its own process (spawned, idle between its steps), so each keeps its own
    # allocator state and policy; they are built one after another (compile time is not shared).
    ctx = mp.get_context("spawn")
    conns, procs, info = {}, [], {}
    try:
        for name in names:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=side_worker, args=(name, a, child), daemon=True)
            proc.start()
            procs.append(proc)
            conns[name] = parent
            info[name] = parent.recv()
        sides = [(name, remote_step(conns[name])) for name in names] + matmul_sides(dev, shipped)
        times, mem = interleaved_rounds(sides, a.warmup_steps, a.steps)
    finally:
        for conn in conns.values():
            conn.send("stop")
        for proc in procs:
            proc.join(timeout=30)
    return info, times, mem


def interleaved_rounds(sides: list, warmup: int, rounds: int) -> tuple[dict, dict]:
    """Each round runs every side once, so that load from other processes on a shared machine hits
    every side alike. Returns (seconds of every round per side, peak GPU memory per side)."""
    for _ in range(warmup):
        for _, run in sides:
            run()
    times = {name: [] for name, _ in sides}
    mem = {}
    for _ in range(rounds):
        for name, run in sides:
            dt, peak = run()
            times[name].append(dt)
            if peak is not None:
                mem[name] = max(mem.get(name, 0.0), peak)
    return times, mem


def add_results(res: dict, a, dev: torch.device, names: list[str], info: dict, times: dict) -> None:
    """Per side: GFLOP per step, step time, samples/s, GFLOP/s; the toolkit sides' fraction of the
    matmul rate of their precision and their speed-up over each baseline."""
    cfg = ScaleConfig(input_dim=a.dim, hidden=a.hidden, layers=a.layers)
    b = a.batch_size
    best = {k: min(v) for k, v in times.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    mm_flops = 2 * matmul_size(dev) ** 3
    flops = info["toolkit"]["flops"]
    res["malloc_reuse"] = {name: info[name]["malloc_reuse"] for name in names}
    res["rounds"] = a.steps
    res["toolkit_gflop_per_step_analytic"] = analytic_step_flops(cfg, b) / 1e9
    for mm in [k for k in best if k.startswith("mm_")]:
        res[f"{mm[3:]}_matmul_gflops"] = {"best": mm_flops / best[mm] / 1e9, "median": mm_flops / med[mm] / 1e9}
    if "toolkit_compiled" in info:
        res["compile_s"] = info["toolkit_compiled"]["build_s"]
    baselines = [name for name in ("naive", "official") if name in names]
    for name in names:
        side_flops = info[name]["flops"]
        res[f"{name}_gflop_per_step"] = side_flops / 1e9
        res[f"{name}_step_s"] = {"best": best[name], "median": med[name]}
        res[f"{name}_samples_per_s"] = {"best": b / best[name], "median": b / med[name]}
        res[f"{name}_gflops"] = {"best": side_flops / best[name] / 1e9, "median": side_flops / med[name] / 1e9}
        if name in baselines:
            continue
        mm = "mm_" + resolve_precision(side_precision(name, a), dev).value  # the rate of the side's own precision
        res[f"{name}_fraction_of_{mm[3:]}_matmul"] = {"best": best[mm] * flops / mm_flops / best[name],
                                                      "median": med[mm] * flops / mm_flops / med[name]}
        for base in baselines:
            ratios = [base_s / side_s for base_s, side_s in zip(times[base], times[name])]
            res[f"speedup_{name}_over_{base}"] = {"best": best[base] / best[name], "median_of_rounds": float(np.median(ratios))}


def main():
    a = parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    shipped = resolve_precision(a.precision, dev)
    cpu = CpuReport.of_this_machine()
    res = machine(a, dev, cpu)
    names = side_names(a, shipped)
    res["precision"] = {name: resolve_precision(side_precision(name, a), dev).describe() for name in names}
    print(f"# {res['cpu']}: torch capability {cpu.capability}, AVX-512 BF16 {cpu.avx512_bf16}, AMX {cpu.amx}; "
          + "; ".join(f"{k}: {v}" for k, v in res["precision"].items()), flush=True)
    info, times, mem = measure(a, dev, names, shipped)
    add_results(res, a, dev, names, info, times)
    if mem:
        res["peak_mem_gib"] = mem
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
