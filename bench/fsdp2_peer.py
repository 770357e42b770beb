"""Peer baseline on N GPUs of one host: PyTorch FSDP2 (torch.distributed.fsdp.fully_shard) on the
models of the one-GPU peer (shared/peers/torch_peer.py: HF transformers, SDPA attention, no
dropout, GPT-2 with a 50304-token vocabulary, Llama 1.1B in TinyLlama's shape), on synthetic random
tokens. Every transformer block is its own FSDP unit and the root holds the rest (embeddings,
final norm, head); MixedPrecisionPolicy computes in bf16 and reduces gradients in f32, with f32
master parameters and fused AdamW (lr 3e-4, weight decay 0.1) on the shards, gradient clipping
at 1.0. Modes: "full" reshards parameters after each unit's forward (ZeRO-3's memory),
"grad_op" keeps them until the backward (ZeRO-2's). Rank 0 prints one JSON line per mode:
tokens/s per GPU from the median step, peak memory of the busiest rank.

  torchrun --standalone --nproc_per_node N bench/fsdp2_peer.py --model gpt2-medium --batch 16 --seq 1024
  mpirun -np N python3 bench/fsdp2_peer.py ...          (Open MPI's variables stand in for torchrun's)
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

torch.backends.cuda.matmul.allow_tf32 = True


def build(name):
    """The model, its vocabulary, and its list of transformer blocks."""
    if name in ("gpt2", "gpt2-medium"):
        width, layers, heads = (768, 12, 12) if name == "gpt2" else (1024, 24, 16)
        cfg = GPT2Config(vocab_size=50304, n_positions=1024, n_embd=width, n_layer=layers, n_head=heads,
                         resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
        cfg._attn_implementation = "sdpa"
        m = GPT2LMHeadModel(cfg)
        return m, 50304, list(m.transformer.h)
    if name == "tinyllama-1.1b":
        cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                          num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)
        cfg._attn_implementation = "sdpa"
        m = LlamaForCausalLM(cfg)
        return m, 32000, list(m.model.layers)
    raise SystemExit(f"fsdp2_peer: unknown model {name!r} (gpt2, gpt2-medium, tinyllama-1.1b)")


def init_distributed():
    # torchrun sets RANK/LOCAL_RANK/WORLD_SIZE and the rendezvous; under mpirun, Open MPI's own.
    for ours, ompi in (("RANK", "OMPI_COMM_WORLD_RANK"), ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
                       ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE")):
        if ours not in os.environ and ompi in os.environ:
            os.environ[ours] = os.environ[ompi]
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    return dist.get_rank(), dist.get_world_size()


def run(args, mode, rank, world):
    torch.manual_seed(0)  # the same initial weights on every rank, as FSDP2 does not broadcast them
    with torch.device("cuda"):
        model, vocab, blocks = build(args.model)
    n_params = sum(p.numel() for p in model.parameters())
    reshard = mode == "full"
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in blocks:
        fully_shard(block, mp_policy=mp, reshard_after_forward=reshard)
    fully_shard(model, mp_policy=mp, reshard_after_forward=reshard)
    model.train()
    def adamw(kind):
        return torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, **{kind: True})

    opt, opt_kind = adamw("fused"), "fused"
    torch.manual_seed(1000 + rank)  # each rank its own batch
    ids = torch.randint(0, vocab, (args.batch, args.seq), device="cuda")

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # a host wait per step, as zt's loss read-back

    t0 = time.perf_counter()
    try:
        losses = [step()]
    except (RuntimeError, NotImplementedError) as e:  # a torch whose fused AdamW takes no sharded parameters
        print(f"fsdp2_peer: fused AdamW failed ({e}); foreach AdamW instead", file=sys.stderr, flush=True)
        opt.zero_grad(set_to_none=True)
        opt, opt_kind = adamw("foreach"), "foreach"
        losses = [step()]
    losses += [step() for _ in range(args.warmup - 1)]
    warm = time.perf_counter() - t0
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t)
    peak = torch.tensor([float(torch.cuda.max_memory_allocated())], device="cuda")
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    ms = statistics.median(times) * 1e3
    result = {"impl": "fsdp2", "config": f"fsdp2-{mode}", "model": args.model, "gpus": world, "B": args.batch,
              "T": args.seq, "steps": args.steps, "params": n_params, "ms_per_step": ms,
              "tokens_per_s_per_gpu": args.batch * args.seq / (ms / 1e3),
              "tokens_per_s": world * args.batch * args.seq / (ms / 1e3), "peak_mem_GiB": peak.item() / 2**30,
              "loss_first": losses[0], "loss_last": losses[-1], "warmup_s": warm, "reshard_after_forward": reshard,
              "optimizer": opt_kind, "precision": "bf16 params, f32 reduce and master", "torch": torch.__version__}
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="gpt2, gpt2-medium or tinyllama-1.1b")
    ap.add_argument("--batch", type=int, required=True, help="sequences per GPU")
    ap.add_argument("--seq", type=int, required=True, help="tokens per sequence")
    ap.add_argument("--steps", type=int, default=8, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (at least 1)")
    ap.add_argument("--modes", default="full,grad_op", help="comma-separated: full, grad_op")
    args = ap.parse_args()
    if args.warmup < 1 or args.steps < 1:
        raise SystemExit("fsdp2_peer: --warmup and --steps must be at least 1")
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("full", "grad_op"):
            raise SystemExit(f"fsdp2_peer: unknown mode {m!r} (full, grad_op)")
    rank, world = init_distributed()
    for mode in modes:
        result = run(args, mode, rank, world)
        if rank == 0:
            print(json.dumps(result), flush=True)
        gc.collect()  # the last mode's model and optimizer states, before the next one's
        torch.cuda.empty_cache()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
