"""Supervised fine-tuning: the paper's SFT arm.

The model is trained on optimal single-turn answers of the in-distribution (ID) split only
(GeneralPoints: black suits, J/Q/K count as 10; V-IRL: the training city, absolute actions), with
the cross-entropy loss on the answer tokens. Every --eval-every steps it is evaluated on the ID
split and on the rule (and, with --vision, visual) OOD splits, and the result is logged against
the training compute spent so far: these are the SFT curves of the paper's figures, where ID
rises while OOD falls ("SFT memorizes").

Launch (the same file runs alone or under torchrun; it looks at RANK / WORLD_SIZE):

    python sft.py --env generalpoints                  # GP-L's SFT arm from the shipped inits/gp-l, minutes
    python sft.py --env generalpoints --model tiny     # the tiny model from scratch
    python sft.py --env generalpoints --vision         # GP-VL (cards shown in an image; from scratch)
    python sft.py --env generalpoints --resume         # continue runs/sft-gp-l from its last checkpoint
    python sft.py --env generalpoints --data SFT_data/gp-l/data.json   # the paper's public SFT data
    torchrun --standalone --nproc_per_node=2 sft.py --env generalpoints          # FSDP on CPU (gloo)
    torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=8 --master_addr=$HEAD_NODE \\
        --master_port=29500 sft.py --env generalpoints --model PATH --preset paper

The run folder runs/NAME/ (default runs/sft-<gp|virl>-<l|vl>; checkpoints.py, as ppo.py's) gets
config.json, metrics.jsonl (read by plots.py), checkpoint-STEP/ folders (the last 2 are kept) and
`final`, a link to the last one, a policy.py folder: `python ppo.py --init runs/sft-gp-l/final`.

Where this departs from the paper's SFT run (a DeepSpeed ZeRO-3 HF Trainer script):
- Data is generated on the fly by the environment (fresh examples every step, never repeated
  epochs) unless --data gives the released file. The loss is the token mean of each
  micro-batch, averaged over the micro-batches of a step, so 1 and N ranks get the same gradient.
- FSDP2 (PyTorch) instead of DeepSpeed ZeRO-3, written out by hand below ("FSDP by hand").
- The CPU defaults (the tiny model's shipped init at lr 1e-4, or from scratch at 1e-3) are there so
  that a laptop sees the curve in minutes; `--preset paper` restores the paper's hyperparameters.

Read top to bottom: the SFT loss and step, FSDP by hand, the training loop; below the "plumbing"
banner, the config and the public data format.
"""

import argparse
import contextlib
import functools
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import cli  # first, before torch: a Ctrl-C while torch loads is one line too
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from tqdm import tqdm

import checkpoints
import generalpoints
from cli import (BATCH, COUNT, COUNT_OR_0, NON_NEGATIVE, POSITIVE, SEED, SHARE, THREADS, ArgumentParser, RunError,
                 add_preset, number, parse, run_folder_problem)
from evaluate import ENVS, PAPER_MAX_NEW_TOKENS, check_context, evaluate, headline, paper_image_size, parse_splits
from policy import TINY_SIZES, load_policy

# -----------------------------------------------------------------------------------------------
# ALGO LOGIC: the SFT step. The loss is on the response only: prompt, image and padding tokens
# are masked out of it.


def sft_loss(logits, labels, n_answer_tokens=None):
    """Mean cross-entropy over the answer tokens (the paper: loss on the response only), or their
    sum over n_answer_tokens (a length group's share of its micro-batch's mean, below).

    labels are policy.py's Batch.labels: the input ids on answer tokens, -100 (ignored) on the
    prompt (image tokens included) and on padding. Left-padded prompt "a b", answer "c d" + E:
        input_ids [P,    a,    b,    c, d, E]        logits at column t predict token t + 1,
        labels    [-100, -100, -100, c, d, E]        so logits[:, :-1] meet labels[:, 1:]
    """
    logits, labels = logits[:, :-1], labels[:, 1:]  # [B, L-1, V], [B, L-1]
    keep = labels != -100  # [B, L-1]
    if n_answer_tokens is None:
        return F.cross_entropy(logits[keep].float(), labels[keep])  # fp32 log-softmax over [T, V]
    return F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum") / n_answer_tokens


def sft_batch(policy, examples):
    """A policy.Batch of SFT examples: each conversation but its last turn is the prompt
    (left-padded), the last turn's text the answer, followed by the end-of-turn token."""
    obs = [{"messages": ex["messages"][:-1], "image": ex["image"]} for ex in examples]
    answers = [policy.response_ids(ex["messages"][-1]["content"][-1]["text"]) for ex in examples]
    return policy.build_batch(obs, answers)


def micro_batch_loss(model, batch, autocast, n_answer_tokens=None):
    """sft_loss of one micro-batch (or of one length group of it). The forward keeps only the logits
    that score answer tokens: the last R + 1 columns (the last prompt token's logits score the first)."""
    answer_len = batch.input_ids.shape[1] - batch.prompt_len  # R
    with autocast:  # bf16 on GPU
        logits = model(**batch.inputs, use_cache=False, logits_to_keep=answer_len + 1).logits  # [B, R+1, V]
    return sft_loss(logits, batch.labels[:, -(answer_len + 1):], n_answer_tokens)  # labels [B, R+1]


def length_groups(examples, groups):
    """The examples in `groups` parts of similar text length, each padded to its own longest: the
    same loss and gradient as one forward, with less padding (all in one part when groups is 1)."""
    def chars(ex):  # characters of text in the conversation (its turns are lists of parts)
        return sum(len(part.get("text") or "") for message in ex["messages"] for part in message["content"])
    ranked, n = (examples if groups == 1 else sorted(examples, key=chars)), len(examples)
    return [part for i in range(groups) if (part := ranked[i * n // groups:(i + 1) * n // groups])]


# -----------------------------------------------------------------------------------------------
# FSDP by hand (FSDP2: torch.distributed.fsdp.fully_shard), the whole of it: ppo.py, policy.py and
# checkpoints.py only call what is here. Under plain `python` there is no process group and none
# of this runs.
#
# 1. Process group (`setup_distributed`). torchrun starts one process per device and sets RANK,
#    WORLD_SIZE and LOCAL_RANK; each process joins the group (NCCL on GPU, gloo on CPU).
# 2. Shards (`shard`). Every transformer block (decoder layer, vision layer) becomes one FSDP unit
#    whose parameters are split across the ranks, 1/world each; then the root takes what is left:
#    the embeddings and the lm_head, in one unit, so that a tied weight belongs to one unit. The
#    value head is a unit of its own, so its gradients are averaged over the ranks too.
# 3. Unshard / reshard. Just before a unit's forward, FSDP all-gathers its full parameters and
#    frees them right after: a rank holds one block in full at a time. `generate` runs outside the
#    root's forward, so shard() gives the policy `gathered` (policy.generate calls it): the root
#    gathered by hand for the whole of model.generate, every rank stepping in lockstep.
# 4. Gradients. The backward reduce-scatters each unit's gradients: every rank gets the average
#    over ranks of the gradient of its own shard, and AdamW updates that shard only. With gradient
#    accumulation, only a step's last micro-batch reduces (set_requires_gradient_sync in run).
# 5. Saving. shard() gives the policy `full_state` (Policy.save calls it, on every rank): every
#    parameter all-gathered in full onto rank 0's CPU, which alone writes the checkpoint; the
#    optimizer state is gathered the same way in checkpoints.save (get_optimizer_state_dict).


def setup_distributed():
    """1. (rank, world_size, device). Under torchrun (RANK set) it joins the process group: gloo
    on CPU, NCCL on GPU. Plain `python` needs nothing: rank 0 of 1."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if "RANK" in os.environ and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        else:  # share the cores between the ranks of this machine
            per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // per_node))
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def shard(policy):
    """2. Wrap the policy with FSDP2 `fully_shard`: each block class named in the model's
    `_no_split_modules` (decoder layers, vision layers), then the root, which keeps the
    embeddings and the (possibly tied) lm_head in one unit, then the value head. bf16 compute
    with fp32 gradient reduction on GPU. Without a process group (plain python) there is nothing
    to shard: the policy is returned unchanged."""
    if not dist.is_initialized():
        return policy
    mesh = init_device_mesh(policy.device.type, (dist.get_world_size(),))
    kwargs = {"mesh": mesh}
    if policy.device.type == "cuda":
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    block_names = set(policy.model._no_split_modules or [])
    blocks = [m for m in policy.model.modules() if type(m).__name__ in block_names]
    if not blocks:
        raise ValueError(f"no FSDP block classes found in {type(policy.model).__name__}")
    for block in blocks:
        fully_shard(block, **kwargs)
    # The root too is resharded after each forward (FSDP2 keeps it gathered by default): else
    # after a no-grad forward model.parameters() are the gathered copies, and an optimizer
    # built from them would update copies that the next all-gather overwrites.
    fully_shard(policy.model, reshard_after_forward=True, **kwargs)
    fully_shard(policy.value_head, mesh=mesh, reshard_after_forward=True)  # fp32
    policy.sharded = True
    policy.gathered = functools.partial(gathered, policy.model)  # 3
    policy.full_state = functools.partial(full_state, policy)  # 5
    return policy


@contextlib.contextmanager
def gathered(model):
    """3. The root's weights all-gathered for a whole model.generate (the blocks gather in their own
    hooks), resharded after; yields generate's synced_gpus, so that every rank keeps stepping until
    all have finished (their samples end at different lengths)."""
    model.unshard()
    try:
        yield {"synced_gpus": dist.get_world_size() > 1}
    finally:
        model.reshard()


def full_state(policy):
    """5. (model state dict, value head state dict) in full on rank 0's CPU, (None, None) on the
    other ranks: a collective (get_model_state_dict with full_state_dict and cpu_offload)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(policy.model, options=options)
    head_state = get_model_state_dict(policy.value_head, options=options)
    return (model_state, head_state) if dist.get_rank() == 0 else (None, None)


# -----------------------------------------------------------------------------------------------
# The training loop


def run(args, examples=None, corpus=None):
    """Train as `args` (from parse_args) says; returns the path of the final checkpoint.
    examples(n, seed=...) -> n SFT examples replaces the generated ID data, and corpus the tiny
    model's tokenizer text (experiments/pretrain.py, the laptop's stand-in for pretraining)."""
    rank, world, device = setup_distributed()  # FSDP 1: the process group (rank 0 of 1 without torchrun)
    out = Path(args.out)
    resume_from = checkpoints.resume_point(out, args, "sft", ("env", "vision", "data", "revise", "batch_size",
                                                               "seed"))  # None: a new run
    micro = args.micro_batch_size or max(1, args.batch_size // world)
    if args.batch_size % (micro * world):
        raise RunError(f"--batch-size {args.batch_size} is not a multiple of --micro-batch-size "
                       f"{micro} x {world} ranks")
    n_micro = args.batch_size // micro  # micro-batches per optimizer step, over all ranks
    accum = n_micro // world  # micro-batches per rank per step (gradient accumulation)
    records = load_sft_file(args.data, args.vision) if args.data else None
    checkpoints.seed_everything(args.seed + rank)

    # Model: a fresh policy, or the checkpoint's own weights when resuming (see checkpoints.load).
    try:  # torchrun: threads = cores / ranks (setup_distributed)
        policy = load_policy(resume_from or args.model, vision=args.vision, seed=args.seed, device=device,
                             threads=args.threads or (None if world > 1 else 1), corpus=corpus)
    except ValueError as err:
        raise RunError(str(err)) from None
    if records is not None:
        records = drop_too_long(records, policy)
    if args.eval_every or args.eval_at:  # before any work: the evaluations' longest conversation must fit
        check_context(policy, args.env, args.vision, args.image_size,
                      [(args.eval_splits, None, args.eval_max_new_tokens, ("--eval-max-new-tokens",), False)])
    n_params = policy.num_params
    if args.grad_checkpointing:
        policy.model.activation_checkpointing_enable()  # before FSDP wraps the blocks
    shard(policy)  # FSDP 2: one unit per block, then the root and the value head (under torchrun)
    model = policy.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=ADAM_BETAS, eps=ADAM_EPS,
                                  weight_decay=args.weight_decay)
    scheduler = cosine_schedule(optimizer, args.steps, args.warmup_frac)
    state = {"tokens": 0, "flops": args.init_flops, "examples_seen": 0}
    if resume_from:
        state = checkpoints.load(resume_from, policy, optimizer, scheduler, keys=state.keys())
    start = state.pop("step", 0)
    if start > args.steps:
        raise RunError(f"{resume_from} is past --steps {args.steps}")

    config = {"method": "sft", **vars(args), "world_size": world, "micro_batch_size": micro,
              "num_params": n_params, "resumed_from": resume_from}
    logger = checkpoints.RunLogger(out, config, rank, resume_step=start if resume_from else None)
    if rank == 0:
        say(f"sft: {args.env}{' (vision)' if args.vision else ''}, {n_params / 1e6:.2f}M parameters, "
            f"{world} rank(s), batch {args.batch_size} = {n_micro} x {micro}, steps {start}->{args.steps}, "
            f"data {args.data or ('generated (ID split)' if examples is None else 'generated (examples hook)')}"
            + (f", {args.revise:.0%} with revision turns" if args.revise else "") + f", out {out}"
            + (f", resumed from {resume_from}" if resume_from else ""))
    splits = tuple(args.eval_splits.split(","))  # default ID, rule-OOD (+ visual-OOD)

    def run_eval(step):
        # Greedy, on the same fixed episodes every time; under FSDP every rank plays them in
        # lockstep (evaluate.py) and rank 0 logs. --preset paper on one process evaluates as the
        # public evaluator: the checkpoint's own generation settings, the public image sizes.
        began = time.time()
        policy.eval()
        results = evaluate(policy, env=args.env, splits=splits, vision=args.vision, n=args.eval_episodes or None,
                           temperature=None if args.preset == "paper" and world == 1 else 0.0,
                           max_new_tokens=args.eval_max_new_tokens, image_size=args.image_size)
        policy.train()
        logger.log({"step": step, "flops": state["flops"], "eval": results})
        if rank == 0:
            summary = " | ".join(f"{split} {100 * headline(m):.1f}%" for split, m in results.items())
            say(f"eval step {step}: {summary} ({time.time() - began:.0f}s)")  # GP success, V-IRL step accuracy

    if (args.eval_every or args.eval_at) and start == 0:
        run_eval(0)  # the initial checkpoint: the first point of every curve

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    policy.train()
    bar = tqdm(total=args.steps, initial=start, desc="sft", dynamic_ncols=True,
               disable=rank != 0 or not sys.stderr.isatty())  # a bar for a terminal, not for logs
    window_losses, window_tokens, window_time = [], 0, 0.0  # since the last log line
    for step in range(start, args.steps):
        step_start = time.time()
        # Forward/backward over this rank's micro-batches: r, r + world, ... of the global batch.
        loss_sum, tokens = 0.0, 0  # this rank's sum of micro-batch losses, non-padding tokens
        for k, m in enumerate(range(rank, n_micro, world)):
            micro_examples = micro_batch_examples(args, records, step, m, micro, args.image_size, examples)
            parts = [sft_batch(policy, group) for group in length_groups(micro_examples, args.length_groups)]
            n_answer = sum(int(b.response_mask.sum()) for b in parts) if len(parts) > 1 else None  # None: the mean
            for j, batch in enumerate(parts):
                if hasattr(model, "set_requires_gradient_sync"):  # FSDP 4: reduce gradients once per step
                    model.set_requires_gradient_sync(k == accum - 1 and j == len(parts) - 1)
                loss = micro_batch_loss(model, batch, autocast, n_answer)
                (loss / accum).backward()  # FSDP averages over ranks: the mean over all micro-batches
                loss_sum, tokens = loss_sum + loss.item(), tokens + int(batch.attention_mask.sum())
        stats = torch.tensor([loss_sum, tokens], dtype=torch.float64, device=device)  # [2]
        if dist.is_initialized():
            dist.all_reduce(stats)  # summed over ranks (on the GPU under NCCL)
        loss, tokens = stats[0].item() / n_micro, int(stats[1].item())
        if not math.isfinite(loss):
            raise RunError(f"the loss is {loss} at step {step + 1}; stopped before updating the "
                           f"weights (last checkpoint: {checkpoints.latest(out) or 'none'})")
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        # Compute axis (the paper's): 6 N D with D = every non-padding token of the batch, prompt and
        # answer (the prompt goes forward and backward too; an image counts as the image tokens in
        # input_ids), summed over ranks; N = policy.num_params, the whole model's parameters.
        state["tokens"] += tokens
        state["flops"] += training_flops(n_params, tokens)
        state["examples_seen"] += args.batch_size
        done = step + 1
        window_time += time.time() - step_start  # training time only, no evals or saves
        bar.update(1)
        window_losses.append(loss)
        window_tokens += tokens
        if done % args.log_every == 0 or done == args.steps:
            record = {"step": done, "loss": sum(window_losses) / len(window_losses),
                      "lr": scheduler.get_last_lr()[0], "tokens": state["tokens"],
                      "tokens_per_s": window_tokens / max(window_time, 1e-9), "flops": state["flops"]}
            logger.log(record)
            if rank == 0:
                say(f"step {done}/{args.steps} | loss {record['loss']:.4f} | lr {record['lr']:.2e} | "
                    f"{record['tokens_per_s']:,.0f} tok/s | {state['flops'] / 1e9:,.1f} GFLOPs")
            window_losses, window_tokens, window_time = [], 0, 0.0
        if (args.eval_every and (done % args.eval_every == 0 or done == args.steps)) or done in args.eval_at:
            run_eval(done)
        if (args.save_every and done % args.save_every == 0) or done == args.steps:
            checkpoints.save(out, done, policy, optimizer, scheduler, state, final=done == args.steps)
    bar.close()
    final = str(out / f"checkpoint-{args.steps}")
    if rank == 0:
        say(f"sft: done, final checkpoint {final} (also {out / 'final'})")
    return final


def micro_batch_examples(args, records, step, m, micro, image_size, examples=None):
    """The examples of micro-batch m of optimizer step `step`: from the --data file, or generated
    (run's examples hook, --revise, else the env's ID split) from micro_batch_seed."""
    if records is not None:
        return file_examples(records, step * args.batch_size + m * micro, micro, args.seed)
    seed = micro_batch_seed(args.seed, step, m)
    if examples is not None:  # the caller's generator (experiments/pretrain.py)
        return examples(micro, seed=seed)
    if args.revise:
        return generalpoints.sft_examples(micro, vision=args.vision, revise=args.revise, seed=seed,
                                          image_size=image_size)
    return ENVS[args.env].sft_examples(micro, vision=args.vision, seed=seed, image_size=image_size)


def micro_batch_seed(seed, step, micro):
    """The data seed of micro-batch `micro` of optimizer step `step`: it depends only on (seed, step,
    micro-batch index), never on the rank or the number of ranks. Rank r trains micro-batches r,
    r + world, ..., so 1 process and N processes see the same global batch, and a resumed run
    continues the same stream."""
    return int(np.random.SeedSequence([seed, step, micro]).generate_state(1)[0])


def training_flops(n_params, tokens):
    """Training compute, the paper's x-axis: 6 N D (forward 2 N D + backward 4 N D FLOPs for D tokens)."""
    return 6.0 * n_params * tokens


def run_name(env: str, vision: bool, seed: int = 0) -> str:
    """gp-l, gp-vl, virl-l, virl-vl: the suffix sft.py names its runs with; -seedN for seed N > 0."""
    return f"{'gp' if env == 'generalpoints' else 'virl'}-{'vl' if vision else 'l'}" + (f"-seed{seed}" if seed else "")


# -----------------------------------------------------------------------------------------------
# ---- plumbing: config and CLI checks, log lines, the lr schedule, the public data file ----


INITS = Path(__file__).resolve().parent / "inits"  # the shipped initial checkpoints (experiments/make_init.py)
# --preset paper: the paper's run (public sft_scripts/gp_l.sh: 8 GPUs x 16, save every 20 steps)
# and the public evaluator's 256 new tokens; cli.parse applies it to every flag left out.
PAPER = dict(steps=400, batch_size=128, micro_batch_size=16, log_every=1, eval_every=20, eval_episodes=0,
             eval_max_new_tokens=PAPER_MAX_NEW_TOKENS, save_every=20, grad_checkpointing=True)
ADAM_BETAS, ADAM_EPS = (0.9, 0.98), 1e-7  # the paper's AdamW (public sft scripts), both presets


def parser():
    """The command line; every default is the CPU one, PAPER holds the paper's (cli.parse)."""
    p = ArgumentParser(description="Supervised fine-tuning on the ID split (the paper's SFT arm).")
    a = p.add_argument
    a("--env", choices=sorted(ENVS), default="generalpoints", help="task: generalpoints or virl (paper: both)")
    a("--vision", action="store_true", help="the VL variant: cards / street views as an image (paper: both)")
    a("--model", help="a model folder, 'tiny', 'tiny-large', 'tiny-vl' (default: inits/) (paper: Llama-3.2-11B-Vision)")
    add_preset(p)
    a("--steps", type=COUNT, default=600, help="optimizer steps (paper: 400 GP-L, 25 V-IRL-L)")
    a("--batch-size", type=BATCH, default=32, help="global batch in examples, over ranks and accumulation (paper: 128)")
    a("--micro-batch-size", type=BATCH, help="examples per forward/backward on one rank (default: all) (paper: 16)")
    a("--length-groups", type=COUNT, default=1, help="forward in N parts of similar length: less padding, same loss")
    a("--lr", type=POSITIVE,
      help="peak learning rate (default: 1e-3 from scratch, 1e-4 from a folder) (paper: 1e-6 L, 5e-7 VL)")
    a("--warmup-frac", type=SHARE, default=0.03, help="share of the steps in linear warm-up, then cosine (paper: 0.03)")
    a("--weight-decay", type=NON_NEGATIVE, default=0.0, help="AdamW weight decay (paper: 0)")
    a("--max-grad-norm", type=POSITIVE, default=1.0, help="clip the global gradient norm to this (paper: 1.0)")
    a("--grad-checkpointing", action=argparse.BooleanOptionalAction, default=False,
      help="recompute activations in the backward pass to save memory (paper: on)")
    p.add_argument("--data", help="train on this file instead of "
                   "examples generated from the ID split (paper: the released SFT_data)")
    p.add_argument("--revise", type=number(at_least=0, at_most=1), default=0.0, help="GeneralPoints only: "
                   "share of ID examples with 1-4 failed attempts first, for inits/gp-l (paper: 0)")
    a("--eval-splits", help="comma-separated splits (default: id,ood-rule, +ood-visual with --vision)")
    a("--eval-every", type=COUNT_OR_0, default=100, help="evaluate every N steps, at 0 and the end; 0: off (paper: 20)")
    a("--eval-at", type=cli.steps, default=(), help="also evaluate after these steps, e.g. 10,20,40")
    a("--eval-episodes", type=COUNT_OR_0, default=0, help="fixed episodes per split, 0 = all (paper: GP 234, V-IRL 48)")
    a("--eval-max-new-tokens", type=COUNT, default=96, help="longest evaluation answer (paper: 256)")
    a("--log-every", type=COUNT, default=10, help="print and log the training loss every N steps (paper: 1)")
    a("--save-every", type=COUNT_OR_0, default=200, help="checkpoint every N steps and at the end (paper: 20)")
    a("--init-flops", type=NON_NEGATIVE,
      help="compute already in --model, D_init of 6 N (D_init + D_sft) (default: its trainer_state.json)")
    a("--threads", type=THREADS, help="CPU threads of this process (default 1, or cores / ranks under torchrun)")
    a("--seed", type=SEED, default=0, help="seed of the model init, the data and the RNGs")
    a("--out", help="run folder (default: runs/sft-<gp|virl>-<l|vl>, -seedN added for --seed N > 0)")
    a("--resume", action="store_true",
      help="continue from the newest checkpoint in --out; may change: more --steps, a lower --lr, --*-every")
    return p


def parse_args(argv=None):
    """The command line (argv=None reads sys.argv), then the derived values, in one block."""
    p = parser()
    args = parse(p, argv, PAPER)
    if args.model is None:  # the shipped init (experiments/make_init.py), as ppo.py starts from
        shipped = INITS / run_name(args.env, args.vision)
        args.model = str(shipped) if shipped.is_dir() else "tiny"
    if args.lr is None:
        from_scratch = args.model in TINY_SIZES
        args.lr = (1e-3 if from_scratch else 1e-4) if args.preset == "cpu" else (5e-7 if args.vision else 1e-6)
    try:  # a --model of another task is refused; the compute already in it is D_init
        checkpoints.check_task(args.model, args.env, args.vision)
        if args.init_flops is None:
            args.init_flops = 0.0 if args.model in TINY_SIZES else checkpoints.init_flops(args.model)
    except RunError as err:
        p.error(str(err))
    if args.out is None:
        args.out = f"runs/sft-{run_name(args.env, args.vision, args.seed)}"
    # the public sizes under --preset paper (1200 px cards, 2405 px grids), the env's CPU size otherwise
    args.image_size = paper_image_size(args.env) if args.preset == "paper" else None
    if why := run_folder_problem(args.out, {"--model": args.model}):
        p.error(f"--out {why}")
    if args.data is not None and not Path(args.data).is_file():  # a folder, a FIFO (it would block)
        p.error(f"--data {args.data}: {'not a regular file' if Path(args.data).exists() else 'no such file'}")
    if args.revise and (args.env != "generalpoints" or args.data):
        p.error("--revise is for GeneralPoints' generated ID data: not with --env virl or --data")
    default = "id,ood-rule" + (",ood-visual" if args.vision else "")
    try:
        args.eval_splits = ",".join(parse_splits(args.eval_splits or default, args.env, args.vision))
    except ValueError as err:
        p.error(f"--eval-splits: {err}")
    return args


def say(text):
    """Print a log line above the progress bar, at once (also when stdout is a pipe)."""
    tqdm.write(text)
    sys.stdout.flush()


def cosine_schedule(optimizer, total_steps, warmup_frac):
    """Linear warm-up over the first warmup_frac of the steps, then cosine decay to 0 (the paper's schedule).

    The multiplier of the base lr at step s (0-based, called once per optimizer step):
    (s + 1) / warmup during warm-up, then 0.5 * (1 + cos(pi * progress)). E.g. 100 steps with
    warmup_frac 0.03: 1/3, 2/3, 1.0, then 1.0, 0.9997, ... down to 0.0003 at step 99.
    """
    warmup = round(warmup_frac * total_steps)

    def multiplier(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)


def load_sft_file(path, vision):
    """Read the public SFT release's format into SFT examples.

    The file is a JSON list of LLaVA-style records:
        {"image": "images/0001.png",                       # optional, relative to the file
         "conversations": [{"from": "human", "value": "<image>\\nYou are an expert ..."},
                           {"from": "gpt", "value": "{\\"cards\\": ...}"}]}
    "<image>" in the human turn marks where the image goes (it becomes the image part of the
    first user turn). The loss is on the last "gpt" turn; earlier turns are prompt.
    Returns a list of (messages, image_path | None). Malformed records are skipped with one
    counted warning; a file with no usable record is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"--data {path}: no such file")
    try:
        records = json.loads(path.read_text(encoding="utf-8-sig"))  # with or without a BOM (Windows editors)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"--data {path}: not valid JSON ({err})")
    except RecursionError:  # json gives up on ~1000 levels of [[[...
        raise RunError(f"--data {path}: JSON nested too deeply to read")
    except OSError as err:
        raise RunError(f"--data {path}: cannot be read ({err.strerror or err})")
    if not isinstance(records, list):
        raise RunError(f"--data {path}: expected a JSON list of records")
    examples, problems = [], []
    for i, record in enumerate(records):
        try:
            examples.append(_parse_record(record, path.parent, vision))
        except ValueError as why:
            problems.append(f"record {i}: {why}")
    if not examples:
        raise RunError(f"--data {path}: no usable record of {len(records)} ({'; '.join(problems[:3])})")
    if problems:
        print(f"warning: --data {path}: skipped {len(problems)} of {len(records)} malformed records "
              f"({'; '.join(problems[:3])})", file=sys.stderr)
    return examples


def _parse_record(record, root, vision):
    turns = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(turns, list) or len(turns) < 2:
        raise ValueError("no 'conversations' list of at least 2 turns")
    messages = []
    for j, turn in enumerate(turns):
        want = "human" if j % 2 == 0 else "gpt"
        if not isinstance(turn, dict) or turn.get("from") != want or not isinstance(turn.get("value"), str):
            raise ValueError(f"turn {j} is not a {want!r} turn with a string 'value'")
        text = turn["value"].replace("<image>", "").strip()
        role = "user" if want == "human" else "assistant"
        messages.append({"role": role, "content": [{"type": "text", "text": text}]})
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"][0]["text"]:
        raise ValueError("the last turn is not a non-empty 'gpt' answer")
    image = record.get("image")
    if image is not None:
        if not vision:
            raise ValueError("has an image but --vision is off")
        image = root / str(image)
        try:  # reads the header only; file_examples decodes the image when its batch comes
            with warnings.catch_warnings():  # a decompression bomb: PIL's warning (> 89M pixels) or error (> 2x)
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                Image.open(image).close()
        except (OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(f"image {image} cannot be opened ({checkpoints.one_line(err)})") from None
        messages[0]["content"].insert(0, {"type": "image"})
    elif vision:
        raise ValueError("no 'image' but --vision is on")
    return messages, image


def file_examples(records, start, n, seed):
    """Examples start .. start+n-1 of the endless stream that walks the file in a fresh random
    order every epoch (order seeded by (seed, epoch), so a resumed run continues it)."""
    out = []
    for i in range(start, start + n):
        epoch, pos = divmod(i, len(records))
        messages, image = records[_epoch_order(seed, epoch, len(records))[pos]]
        try:
            with warnings.catch_warnings():  # PIL's notes on odd modes (a palette's transparency): converted anyway
                warnings.simplefilter("ignore")
                out.append({"messages": messages, "image": Image.open(image).convert("RGB") if image else None})
        except OSError as err:  # a truncated image: its header read well in load_sft_file
            raise RunError(f"--data: image {image} cannot be decoded ({checkpoints.one_line(err)})")
    return out


def drop_too_long(records, policy):
    """The records whose prompt and answer fit the model's context, in text tokens (an image counts
    as the placeholder tokens of its chat template); the others are skipped with one counted
    warning, like malformed records. A file with none that fits is an error."""
    most = policy.context * max(map(len, policy.tokenizer.get_vocab()))  # characters that could fit

    def length(messages):  # the prompt's tokens, then the answer's and its end-of-turn token
        if sum(len(part.get("text", "")) for m in messages for part in m["content"]) > most:
            return policy.context + 1  # too long for sure: a 100 MB record is not tokenized
        prompt = policy.tokenizer(policy.chat_text(messages[:-1]), add_special_tokens=False)["input_ids"]
        return len(prompt) + len(policy.response_ids(messages[-1]["content"][0]["text"]))

    kept = [(messages, image) for messages, image in records if length(messages) <= policy.context]
    if not kept:
        raise RunError(f"--data: no record fits the model's context of {policy.context} tokens")
    if len(kept) < len(records) and (not dist.is_initialized() or dist.get_rank() == 0):
        print(f"warning: --data: skipped {len(records) - len(kept)} of {len(records)} records longer than "
              f"the model's context of {policy.context} tokens", file=sys.stderr)
    return kept


@functools.lru_cache(maxsize=4)
def _epoch_order(seed, epoch, n):
    return np.random.default_rng([seed, epoch]).permutation(n)


def main(argv=None) -> None:
    """sft.py's command line: cli.main runs it, a RunError is one line and exit status 1."""
    cli.main(run, parse_args, argv)


if __name__ == "__main__":
    main()
