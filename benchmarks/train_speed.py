"""Training speed: SFT steps, PPO updates and the scoring pass, in tokens/s and peak memory.

Two modes, one file:

- The tiny model (default, CPU): the real training calls on real GeneralPoints data. An SFT step
  is what sft.py's loop does (sft.sft_batch, sft.micro_batch_loss: the forward keeping the
  answer's logits and sft.sft_loss; backward, gradient clipping, AdamW); a PPO update is ppo.ppo_update itself on a
  simulated rollout of ppo.py's default size (32 environments x 4 attempts, oracle answers and
  near misses, so failed attempts grow multi-turn prompts), with old log-probs from
  ppo.score_rollout. Every pass is padding-aware: many attempts per forward, left-padded prompts,
  tokens counted without padding. Batched is set against one at a time, as the paper's public
  code runs its update (micro-batches of 1 accumulated 128 times), and the scoring pass in
  rollout order against length-sorted order.
- `--model CONFIG` (qwen2-vl-2b, llama-3.2-11b-vision: the real models' shapes written below as
  transformers configs, random weights, nothing downloaded) or `--model PATH` (any local HF
  checkpoint's config): SFT steps on random token ids with sft.py's GPU recipe (fp32 master
  weights, bf16 autocast, SDPA attention; optionally FSDP2 via sft.shard, which is what
  sft.py does under torchrun) and batched sampling, both with model FLOPs utilisation:
      MFU = 6 N tokens/s / peak bf16 FLOP/s   (training; 2 N for generation, prefill included)
  N counts the parameters the tokens go through (those that get a gradient; the input embedding,
  a lookup, only when tied to the output layer): a text-only batch skips the vision tower and
  Mllama's cross-attention layers. The attention score/value matmuls are not counted (about 7%
  more at 1024 tokens on the 2B shape), so the figure is slightly conservative.

    python benchmarks/train_speed.py                       # tiny model, ~1 minute on 2 CPU cores
    python benchmarks/train_speed.py --quick               # seconds
    python benchmarks/train_speed.py --model qwen2-vl-2b   # one GPU: bf16, SDPA, MFU
    python benchmarks/train_speed.py --model qwen2-vl-2b --fsdp             # FSDP2, world size 1
    torchrun --nproc_per_node=8 benchmarks/train_speed.py --model llama-3.2-11b-vision --fsdp

Ends with `update batched/sequential speedup: X.Xx` (tiny) or `SFT MFU: X.X%` (--model).
"""
import argparse
import os
import random
import re
import resource
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText,
                          GenerationConfig, MllamaConfig, Qwen2VLConfig)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import generalpoints  # noqa: E402
import policy as P  # noqa: E402
import ppo  # noqa: E402
import sft  # noqa: E402

# The shapes of the real models (their public config.json), built with random weights.
CONFIGS = {
    # Qwen2-VL-2B-Instruct: 2.21B parameters (1.54B language model with tied embeddings, 0.67B ViT)
    "qwen2-vl-2b": lambda: Qwen2VLConfig(
        text_config=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         rms_norm_eps=1e-6, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                          "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        tie_word_embeddings=True),
    # Llama-3.2-11B-Vision-Instruct, the paper's model: 10.67B parameters (40 text layers, 8 of
    # them cross-attention, counted inside num_hidden_layers; a 32+8-layer ViT on 560^2 tiles)
    "llama-3.2-11b-vision": lambda: MllamaConfig(
        text_config=dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                         num_hidden_layers=40, num_attention_heads=32, num_key_value_heads=8,
                         cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38],
                         max_position_embeddings=131072,
                         rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                          "factor": 8.0, "low_freq_factor": 1.0,
                                          "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 8192}),
        vision_config=dict(hidden_size=1280, num_hidden_layers=32, num_global_layers=8,
                           attention_heads=16, intermediate_size=5120, vision_output_dim=7680,
                           image_size=560, patch_size=14, max_num_tiles=4,
                           intermediate_layers_indices=[3, 7, 15, 23, 30],
                           supported_aspect_ratios=[[1, 1], [1, 2], [1, 3], [1, 4], [2, 1],
                                                    [2, 2], [3, 1], [4, 1]]),
        image_token_index=128256),
}
# Dense bf16 tensor-core peak FLOP/s by GPU name (vendor data sheets; sparsity not counted).
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12)]
BIG = 100e6  # parameters; a config this big needs --allow-cpu to run on a CPU


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    """(result, seconds) of fn(), the GPU's queue drained on both sides."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Peak memory: the CUDA allocator's peak on a GPU, the process's peak RSS on a CPU (Linux:
# VmHWM in /proc/self/status, which writing 5 to /proc/self/clear_refs resets)
# ---------------------------------------------------------------------------------------------

def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: the peak below is the whole process's


def peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_label(device):
    return "peak GPU memory" if device.type == "cuda" else "peak RSS"


# ---------------------------------------------------------------------------------------------
# The tiny model: SFT step, PPO update, scoring
# ---------------------------------------------------------------------------------------------

def sft_step(policy, optimizer, examples, autocast):
    """One step of sft.py's loop on one micro-batch (sft.sft_batch, sft.micro_batch_loss, backward,
    clipping, AdamW); returns the non-padding tokens and the batch's padded size B x L."""
    batch = sft.sft_batch(policy, examples)  # prompt left-padded, answer right after
    sft.micro_batch_loss(policy.model, batch, autocast).backward()
    torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return int(batch.attention_mask.sum()), batch.input_ids.numel()


def sft_batches(n, batch_size, seed=0):
    """n batches of GP-L ID SFT examples, as sft.py generates them."""
    return [generalpoints.sft_examples(batch_size, seed=seed + i) for i in range(n)]


def simulated_rollout(policy, num_envs, steps, seed=0):
    """(obs, responses) of `steps` iterations x `num_envs` GP-L environments in ppo.py's
    t-major order. Each answer is the oracle's with probability 1/2, else one of the verifier's
    near misses (generalpoints.answer_variants), so failed attempts continue the conversation
    with feedback turns and prompts grow as in a real rollout of a half-trained model."""
    rng = random.Random(seed)
    envs = [generalpoints.make_env("id", seed=seed * 1000 + e) for e in range(num_envs)]
    current = [env.reset()[0] for env in envs]
    obs, responses = [], []
    for _ in range(steps):
        for e, env in enumerate(envs):
            variants = generalpoints.answer_variants(env.cards, env.rule, rng)
            text = variants[0] if rng.random() < 0.5 else rng.choice(variants[1:])
            obs.append(current[e])
            responses.append(policy.response_ids(text))
            next_obs, _, terminated, truncated, _ = env.step(text)
            current[e] = env.reset()[0] if terminated or truncated else next_obs
    return obs, responses


def padding_share(prompt_lens, resp_lens, micro):
    """Share of the padded B x L grids that is padding when consecutive groups of `micro`
    attempts form a batch (prompts left-padded to the longest, responses right-padded)."""
    real = padded = 0
    for i in range(0, len(prompt_lens), micro):
        p, r = prompt_lens[i:i + micro], resp_lens[i:i + micro]
        real += sum(p) + sum(r)
        padded += len(p) * (max(p) + max(r))
    return 1 - real / padded


def bench_tiny(args):
    quick = args.quick
    policy = P.load_policy(args.model, seed=0, threads=args.threads)
    device = policy.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    print(f"model {args.model}: {policy.num_params:,} parameters, device {device}"
          + (f", {torch.get_num_threads()} thread(s)" if device.type == "cpu" else ""))
    mem = memory_label(device)

    # ---- SFT: sft.py's default batch of 32 GP-L answers ----
    batch_size, steps = (8, 2) if quick else (32, 6)
    policy.train()
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-4, betas=sft.ADAM_BETAS,
                                  eps=sft.ADAM_EPS)
    batches = sft_batches(steps + 1, batch_size)
    sft_step(policy, optimizer, batches[0], autocast)  # warm-up: allocations, Adam state
    reset_peak(device)
    counts, secs = timed(lambda: [sft_step(policy, optimizer, b, autocast) for b in batches[1:]],
                         device)
    real, grid = sum(c[0] for c in counts), sum(c[1] for c in counts)
    print(f"SFT step, batch of {batch_size}: {real / secs:8,.0f} tokens/s "
          f"({secs / steps:.3f} s/step, {real // steps} tokens/step, padding {1 - real / grid:.0%}), "
          f"{mem} {peak_mb(device):,.0f} MB")

    # ---- PPO: a simulated rollout, scored and updated with ppo.py's own functions ----
    default = ppo.parse_args([])  # the main job's rollout: 128 attempts, minibatches of 64
    num_envs, iters, minibatch = (8, 4, 16) if quick else (
        default.num_envs, default.rollout_steps // default.num_envs, default.minibatch_size)
    obs, responses = simulated_rollout(policy, num_envs, iters)
    n = len(obs)
    prompt_lens = [int(policy.prompt_inputs([o])["attention_mask"].sum()) for o in obs]
    resp_lens = [len(r) for r in responses]
    tokens = sum(prompt_lens) + sum(resp_lens)
    print(f"PPO: {n} attempts ({iters} iterations x {num_envs} envs), prompts "
          f"{min(prompt_lens)}-{max(prompt_lens)} tokens, answers {min(resp_lens)}-{max(resp_lens)}, "
          f"{tokens:,} tokens")

    def ppo_args(micro):  # ppo.py's own parser, one epoch of minibatches split into micro-batches
        return ppo.parse_args(["--num-envs", str(num_envs), "--rollout-steps", str(n),
                               "--minibatch-size", str(minibatch), "--ppo-epochs", "1",
                               "--grad-accum", str(minibatch // micro)])

    # scoring (ppo.score_rollout, no grad): one at a time, and in batches of ppo.py's micro-batch
    # size (--minibatch-size / --grad-accum) and of a whole minibatch, each length-sorted as
    # ppo.py does, and once in rollout order (ppo.length_sorted switched off) to show the sort
    key = generalpoints.ANSWER_KEY
    mid = min(default.minibatch_size // default.grad_accum, minibatch)  # ppo.py's micro-batch
    policy.eval()
    ppo.score_rollout(policy, obs[:4], responses[:4], ppo_args(4), key)  # warm-up
    order = sorted(range(n), key=lambda i: (prompt_lens[i], resp_lens[i]))
    (old_logp, old_values, _, _), t_mid = timed(
        lambda: ppo.score_rollout(policy, obs, responses, ppo_args(mid), key), device)
    _, t_full = timed(lambda: ppo.score_rollout(policy, obs, responses, ppo_args(minibatch), key),
                      device)
    sort = ppo.length_sorted
    ppo.length_sorted = lambda indices, o, r: list(indices)  # rollout order
    try:
        _, t_unsorted = timed(lambda: ppo.score_rollout(policy, obs, responses, ppo_args(mid), key),
                              device)
    finally:
        ppo.length_sorted = sort
    _, t_seq = timed(lambda: ppo.score_rollout(policy, obs, responses, ppo_args(1), key), device)
    # the prompt-id cache (policy.prompt_inputs): PPO scores each prompt 4-5 times per update
    ids_only, policy._ids_only = policy._ids_only, False  # tokenize every call, as before the cache
    _, t_tokenize = timed(lambda: ppo.score_rollout(policy, obs, responses, ppo_args(mid), key), device)
    policy._ids_only = ids_only
    _, t_cached = timed(lambda: ppo.score_rollout(policy, obs, responses, ppo_args(mid), key), device)
    sorted_p, sorted_r = [prompt_lens[i] for i in order], [resp_lens[i] for i in order]
    print(f"scoring, one at a time:                   {tokens / t_seq:8,.0f} tokens/s "
          f"(prompt + answer tokens, padding not counted)")
    print(f"scoring, batches of {mid:2d}, rollout order:    {tokens / t_unsorted:8,.0f} tokens/s "
          f"(padding {padding_share(prompt_lens, resp_lens, mid):.0%})")
    print(f"scoring, batches of {mid:2d}, sorted (ppo.py): {tokens / t_mid:8,.0f} tokens/s "
          f"(padding {padding_share(sorted_p, sorted_r, mid):.0%})")
    print(f"scoring, batches of {minibatch:2d}, sorted:          {tokens / t_full:8,.0f} tokens/s "
          f"(padding {padding_share(sorted_p, sorted_r, minibatch):.0%})")

    # the update: ppo.ppo_update with each minibatch as one micro-batch, as ppo.py's default
    # micro-batches (--grad-accum 8: 64 / 8), and as micro-batches of 1 (the paper's code)
    torch.manual_seed(0)
    advantages = torch.randn(n)  # [N] stands in for normalised GAE advantages
    batch = {"obs": obs, "responses": responses, "old_logp": old_logp, "old_values": old_values,
             "advantages": advantages, "returns": old_values + advantages,
             "tokens": torch.tensor(prompt_lens, dtype=torch.float32) + torch.tensor(resp_lens)}
    params = list(policy.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-6, eps=1e-7)  # as ppo.py: Adam, tiny steps here
    ppo.ppo_update(policy, optimizer, params, {k: v[:minibatch] for k, v in batch.items()},
                   ppo_args(minibatch), key)  # warm-up: one minibatch, Adam state allocated
    t_upd = {}
    for micro in (minibatch, mid, 1):
        reset_peak(device)
        stats, t_upd[micro] = timed(lambda: ppo.ppo_update(policy, optimizer, params, batch,
                                                           ppo_args(micro), key), device)
        label = " (ppo.py)" if micro == mid else " (paper)" if micro == 1 else ""
        prefix = f"PPO update, micro-batches of {micro:2d}{label}:"
        print(f"{prefix:<42}{stats['tokens'] / t_upd[micro]:8,.0f} tokens/s ({t_upd[micro]:.2f} s "
              f"per epoch over {n} attempts), {mem} {peak_mb(device):,.0f} MB")

    if args.compare_threads and device.type == "cpu" and (os.cpu_count() or 1) >= 2:
        compare_threads(policy, batches, obs, autocast)
    print(f"scoring length-sorted/rollout-order speedup: {t_unsorted / t_mid:.2f}x")
    print(f"scoring batched/sequential speedup: {t_seq / t_mid:.1f}x")
    print(f"scoring with cached prompt ids / tokenized every call: {t_tokenize / t_cached:.2f}x")
    print(f"update micro-batches of {mid} vs {minibatch}: {t_upd[minibatch] / t_upd[mid]:.2f}x")
    print(f"update batched/sequential speedup: {t_upd[1] / t_upd[mid]:.1f}x")


def compare_threads(policy, batches, obs, autocast):
    """SFT steps and batched sampling at 1 and 2 torch threads, interleaved (1, 2, 1, 2) so
    that both see the same load from other processes; the best of two runs each."""
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-4)
    policy.train()
    sft_step(policy, optimizer, batches[0], autocast)
    gen_obs = obs[:32]
    results = {1: {"sft": 0.0, "gen": 0.0}, 2: {"sft": 0.0, "gen": 0.0}}
    before = torch.get_num_threads()
    for threads in (1, 2, 1, 2):
        torch.set_num_threads(threads)
        counts, secs = timed(lambda: [sft_step(policy, optimizer, b, autocast) for b in batches[1:]],
                             policy.device)
        results[threads]["sft"] = max(results[threads]["sft"], sum(c[0] for c in counts) / secs)
        _, secs = timed(lambda: policy.generate(gen_obs, temperature=1.0, max_new_tokens=32,
                                                min_new_tokens=32), policy.device)
        results[threads]["gen"] = max(results[threads]["gen"], len(gen_obs) * 32 / secs)
    torch.set_num_threads(before)
    for threads, r in results.items():
        print(f"threads {threads}: SFT step {r['sft']:8,.0f} tokens/s, generation (batch of "
              f"{len(gen_obs)}) {r['gen']:6,.0f} new tokens/s")
    print(f"2-thread/1-thread: SFT {results[2]['sft'] / results[1]['sft']:.2f}x, "
          f"generation {results[2]['gen'] / results[1]['gen']:.2f}x")


# ---------------------------------------------------------------------------------------------
# A real-size config (or a local checkpoint's config): bf16, SDPA, FSDP, MFU
# ---------------------------------------------------------------------------------------------

def model_config(name):
    """A config object from a CONFIGS name or a local checkpoint folder (weights not read)."""
    if name in CONFIGS:
        return CONFIGS[name]()
    return AutoConfig.from_pretrained(name)


def build_model(config, device):
    """Random weights from the config on `device`, SDPA attention, fp32 (the master weights)."""
    vlm = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    auto = AutoModelForImageTextToText if vlm else AutoModelForCausalLM
    with torch.device(device):
        return auto.from_config(config, attn_implementation="sdpa", dtype=torch.float32)


def millions(n):
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"


def gpu_peak_flops(device, override):
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16 if key in name), None)


def init_world_size_one():
    """Make sft.setup_distributed() start a process group without torchrun (world size 1)."""
    if "RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def bench_config(args, config):
    quick = args.quick
    if args.fsdp:
        init_world_size_one()
    rank, world, device = sft.setup_distributed()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    say = print if rank == 0 else (lambda *a, **k: None)
    model = build_model(config, device)
    total = sum(p.numel() for p in model.parameters())
    embed, out_layer = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    tied, embed_numel = embed is out_layer, embed.numel()
    vocab = config.get_text_config().vocab_size
    # image / video placeholders must never appear: the forward would look for image features
    banned = sorted({i for i in (getattr(config, name, None) for name in (
        "image_token_id", "image_token_index", "video_token_id", "vision_start_token_id",
        "vision_end_token_id")) if i is not None and i < vocab})
    allowed = next(i for i in range(vocab) if i not in banned)

    def random_ids(*shape):
        ids = torch.randint(vocab, shape, device=device)
        return ids.masked_fill(torch.isin(ids, torch.tensor(banned, dtype=ids.dtype, device=device)),
                               allowed)
    model.train()
    if args.grad_checkpointing:
        model.activation_checkpointing_enable()  # as sft.py, before FSDP wraps the blocks
    # FSDP2 as sft.py wraps it (sft.shard: blocks, root, value head; bf16 compute on GPU)
    holder = SimpleNamespace(model=model, device=device, sharded=False,
                             value_head=P.value_head(config.get_text_config().hidden_size).to(device))
    if args.fsdp:
        sft.shard(holder)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=sft.ADAM_BETAS, eps=sft.ADAM_EPS)
    peak = gpu_peak_flops(device, args.peak_flops)
    batch, seq = args.batch_size or (2 if quick else 8), args.seq_len or (32 if quick else 1024)
    precision = "bf16 autocast over fp32 master weights" if device.type == "cuda" else "fp32"
    say(f"model {args.model}: {millions(total)} parameters, device "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, {precision}, "
        f"SDPA, {'FSDP2 over ' + str(world) + ' rank(s)' if args.fsdp else 'no FSDP'}"
        f"{', activation checkpointing' if args.grad_checkpointing else ''}")

    def step():  # sft.py's step on a full-length random sequence: every token is an answer token
        ids = random_ids(batch, seq)  # [B, L]
        with autocast:
            logits = model(input_ids=ids, use_cache=False).logits  # [B, L, V]
        sft.sft_loss(logits, ids).backward()
        active = sum(p.numel() for p in model.parameters() if p.grad is not None)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return active

    active = step()  # warm-up; N = the parameters that got a gradient (DTensors count in full)
    n_used = active - (0 if tied else embed_numel)  # an untied input embedding is a lookup
    steps = 2 if quick else args.steps
    reset_peak(device)
    _, secs = timed(lambda: [step() for _ in range(steps)], device)
    tok_s = batch * seq * steps / secs  # per rank
    say(f"SFT step, {batch} x {seq} tokens per rank: {tok_s * world:10,.0f} tokens/s "
        f"({secs / steps:.3f} s/step), {memory_label(device)} {peak_mb(device):,.0f} MB (rank 0), "
        f"N = {millions(n_used)} parameters used")

    # batched sampling, as a rollout: random prompts, every answer forced to full length
    gen_batch, prompt_len = args.gen_batch or (2 if quick else 64), 16 if quick else 256
    new = 4 if quick else args.new_tokens
    prompts = random_ids(gen_batch, prompt_len)  # [B, P]
    gen_config = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                  max_new_tokens=new, min_new_tokens=new, pad_token_id=0,
                                  eos_token_id=config.get_text_config().eos_token_id,
                                  suppress_tokens=banned or None)
    model.eval()

    def generate():
        if args.fsdp:
            model.unshard()  # as policy.generate: gather the root; blocks gather in their hooks
        try:
            with torch.no_grad(), autocast:
                return model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts),
                                      generation_config=gen_config, synced_gpus=world > 1)
        finally:
            if args.fsdp:
                model.reshard()

    generate()  # warm-up: the decoding path's first kernels and cache allocations
    out, secs = timed(generate, device)
    assert out.shape[1] == prompt_len + new, "every answer must run to --new-tokens"
    gen_s = gen_batch * new / secs
    say(f"generation, batch of {gen_batch}, {prompt_len} + {new} tokens: {gen_s * world:10,.0f} "
        f"new tokens/s")
    if peak is None:
        say("MFU: n/a (no bf16 peak known for this device; pass --peak-flops)")
    else:
        gen_mfu = 2 * n_used * gen_batch * (prompt_len + new) / secs / peak
        say(f"generation MFU: {100 * gen_mfu:.1f}% (2 N x prompt + new tokens)")
        say(f"SFT MFU: {100 * 6 * n_used * tok_s / peak:.1f}% of {peak / 1e12:g} TFLOP/s per device")
    if dist.is_initialized():
        dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny",
                        help=f"'tiny' / 'tiny-large' (the CPU benchmark), a config name "
                             f"({', '.join(CONFIGS)}) or a local checkpoint folder (random "
                             f"weights from its config)")
    parser.add_argument("--quick", action="store_true", help="small batches, few steps: seconds")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1, as policy.load_policy)")
    parser.add_argument("--compare-threads", action=argparse.BooleanOptionalAction, default=None,
                        help="also time SFT steps and generation at 1 and 2 threads (tiny model "
                             "on a CPU; default: on, off with --quick)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help=f"run a config of more than {BIG / 1e6:.0f}M parameters on a CPU anyway")
    parser.add_argument("--fsdp", action="store_true",
                        help="--model CONFIG/PATH: wrap with FSDP2 (sft.shard); world size 1 "
                             "without torchrun")
    parser.add_argument("--grad-checkpointing", action="store_true",
                        help="--model CONFIG/PATH: recompute activations in the backward pass")
    parser.add_argument("--batch-size", type=int, help="--model CONFIG/PATH: sequences per SFT "
                        "step per rank (default 8; 2 with --quick)")
    parser.add_argument("--seq-len", type=int, help="--model CONFIG/PATH: tokens per sequence "
                        "(default 1024; 32 with --quick)")
    parser.add_argument("--steps", type=int, default=10, help="--model CONFIG/PATH: timed SFT "
                        "steps after one warm-up step (2 with --quick)")
    parser.add_argument("--gen-batch", type=int, help="--model CONFIG/PATH: prompts sampled "
                        "together (default 64; 2 with --quick)")
    parser.add_argument("--new-tokens", type=int, default=256,
                        help="--model CONFIG/PATH: tokens sampled per prompt (4 with --quick)")
    parser.add_argument("--peak-flops", type=float,
                        help="peak FLOP/s for MFU (default: dense bf16 by GPU name: H100 SXM "
                             "989e12, PCIe 756e12, NVL 835e12, H200 989e12, A100 312e12)")
    args = parser.parse_args()
    for flag in ("threads", "batch_size", "seq_len", "steps", "gen_batch", "new_tokens"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.peak_flops is not None and args.peak_flops <= 0:
        parser.error("--peak-flops must be positive")
    if args.compare_threads is None:
        args.compare_threads = not args.quick
    if args.model in P.TINY_SIZES:
        return bench_tiny(args)
    if args.model not in CONFIGS and not os.path.isdir(args.model):
        parser.error(f"--model {args.model!r} is neither tiny, tiny-large, one of "
                     f"{', '.join(CONFIGS)} nor a folder")
    try:
        config = model_config(args.model)
    except Exception as e:  # a user's folder: any failure to read it is one line, not a traceback
        reason = (str(e).strip() or type(e).__name__).splitlines()[0]
        parser.error(f"--model {args.model!r}: no usable config.json ({reason})")
    cuda = torch.cuda.is_available()
    if not cuda:
        size = sum(p.numel() for p in build_model(config, "meta").parameters())  # no memory
        if size > BIG and not args.allow_cpu:
            parser.error(f"--model {args.model} has {size / 1e9:.2f}B parameters and there is no "
                         f"GPU; pass --allow-cpu to run it on the CPU anyway (slow; fp32 AdamW "
                         f"needs ~{16 * size / 1e9:.0f} GB of memory)")
    try:
        bench_config(args, config)
    except torch.OutOfMemoryError:
        sys.exit(f"error: out of memory with {args.model}; try a smaller --batch-size / --seq-len "
                 f"/ --gen-batch, --grad-checkpointing, or --fsdp over more GPUs")


if __name__ == "__main__":
    main()
