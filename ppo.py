"""PPO with a value head and verifier revision: the RL arm of "SFT Memorizes, RL Generalizes".

    python ppo.py --env generalpoints             # the main job: PPO from the shipped inits/gp-l
    python ppo.py --env virl --vision --init inits/fig1-virl-vl   # V-IRL-VL from its released init (GP-VL likewise)
    python ppo.py --env generalpoints --resume    # continue a killed run from its last checkpoint
    torchrun --standalone --nproc_per_node=2 ppo.py --env generalpoints     # FSDP on CPU (gloo)
    torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=8 --master_addr=$HEAD_NODE \\
        --master_port=29500 ppo.py --env virl --vision --model PATH --init CKPT --preset paper

One update, in the order `run` runs it (the paper's RL with sequential revision; public code: rl/trainer):
  1. rollout: every rank steps --num-envs environments together, one batched generate() per
     iteration; a failed attempt continues the conversation with "You failed this trial because
     <reason>" (VIter: up to 5 attempts per hand in GeneralPoints, 2 per position in V-IRL).
  2. scoring: one no-grad pass of policy.score, the function the update uses, gives each
     attempt's old action log-prob and value, and the bootstrap value of unfinished episodes.
  3. GAE over the attempts of each environment's trajectory; advantages normalised over the batch.
  4. --ppo-epochs epochs of shuffled minibatches: clipped surrogate + value loss, gradient
     clipping, Adam, one cosine learning-rate step per update.

Exactly the paper's (public rl/trainer, rl/configs): turn-level PPO, one value (MLP head at the last
prompt token) and one action log-prob per attempt, log pi(a|s) = 0.5 x (thought tokens before the
answer key) + (tokens from the answer key on), of logits / temperature in fp32; normalised
advantages; ratio clip 0.1; value coefficient 0.5; no entropy bonus; Adam eps 1e-7; the verifier's
reward per attempt. `--preset paper` restores the rest (PAPER below; explicit flags still win).
Where the CPU defaults differ (measured on the 1.42M-parameter tiny model; experiments/LOG.md):
whole-episode credit (--gamma 1 --gae-lambda 1), a KL penalty to the init (--kl-coef 0.2; TRL and
verl offer one), lr 1e-4 with warm-up and a 200-update cosine, a detached critic whose MLP learns
at 1e-3 unclipped, T 0.5 (V-IRL 0.7), 64 envs, 2 epochs, max grad norm 1.0, 100 updates.

Under torchrun each rank steps its own environments (seeds offset by rank), the model is sharded
with FSDP2 (sft.py, "FSDP by hand"), rank 0 logs and saves; seeded, not bit-exact. Compute axis
(the paper's): flops = 6 N (D_init + D_rl) + 2 N D_buffer: the init's own training flops, the
tokens of every forward+backward of the update, and of the two no-grad passes over every attempt.
"""

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cli  # first, before torch: a Ctrl-C while torch loads is one line too
import numpy as np
import torch
from tqdm import tqdm

import checkpoints
import evaluate
import plots
import policy as policy_lib
import sft
from cli import (ATTEMPTS, BATCH, COUNT, COUNT_OR_0, NON_NEGATIVE, POSITIVE, SAMPLES_OR_0, SEED, SHARE, THREADS,
                 ArgumentParser, RunError, add_preset, parse, run_folder_problem)

# --preset paper: the paper's values (the public code's rl/configs) for every flag left unset
PAPER = dict(lr=1e-6, vf_lr=0.0, vf_clip=0.1, ppo_epochs=4, temperature=0.2, max_grad_norm=0.01, num_envs=1,
             rollout_steps=256, minibatch_size=128, grad_accum=128, updates=None, eval_episodes=0, max_new_tokens=512,
             warmup_updates=0, critic="shared", lr_horizon=100, gamma=0.9, gae_lambda=0.95, kl_coef=0.0, eval_samples=0,
             eval_max_new_tokens=256, eval_temperature=None)
PAPER_UPDATES, CPU_UPDATES = {"generalpoints": 20, "virl": 15}, {"generalpoints": 100, "virl": 30}
CPU_TEMPERATURE = {"generalpoints": 0.5, "virl": 0.7}  # measured per task (experiments/LOG.md, 2026-12-02)
# Verifier outcomes (generalpoints.py / virl.py); the per-update line reports the share of each.
OUTCOMES = {"generalpoints": ("correct", "wrong_value", "wrong_numbers", "illegal_formula", "wrong_cards"),
            "virl": ("correct", "wrong_action", "wrong_observation")}


# ---- ALGO LOGIC: rollout (batched environments, one PPO step per attempt) -------------------------

@dataclass
class Rollout:
    """T iterations x E environments of attempts; lists are flattened t-major (index t * E + e)."""
    obs: list                       # [T*E] the observation each attempt answered
    responses: list                 # [T*E] generated token ids (EOS included when produced)
    rewards: torch.Tensor           # [T, E] verifier reward (+ the -1 when attempts ran out)
    dones: torch.Tensor             # [T, E] 1.0 where the attempt ended its episode
    cut_off: torch.Tensor           # [T, E] 1.0 where the answer hit --max-new-tokens
    outcomes: list                  # [T*E] verdict outcome names
    tries: list                     # [T*E] which attempt of its hand / position (1 = first)
    last_obs: list                  # [E] current observations after the rollout (bootstrap)
    episodes: list = field(default_factory=list)  # the episodes that ended: success, samples
    gen_tokens: int = 0             # tokens generated
    gen_seconds: float = 0.0


def _user_text(message: dict) -> str:
    return " ".join(part.get("text", "") for part in message["content"] if part.get("type") == "text")


def episode_gist(obs: dict) -> str:
    """The gist of an episode's prompt, for the samples: GP-L's cards line, V-IRL's latest
    observations, else the prompt's tail."""
    text = _user_text(obs["messages"][0])
    lines = [ln for ln in text.splitlines() if ln.startswith("Cards:") or re.match(r"[OA]_\d+:", ln)]
    gist = " / ".join(lines[-3:]) if lines else "..." + text[-100:]
    return gist + (" (+ image)" if obs.get("image") is not None else "")


def collect_rollout(policy, envs, obs, steps, args) -> Rollout:
    """Step all environments together for `steps` iterations, auto-resetting finished episodes.

    `obs` (one per env) carries over between updates, so episodes continue across rollouts as in
    CleanRL; roll.episodes holds the episodes that ended in this rollout, with the attempts it saw.
    """
    E = len(envs)
    rewards, dones, cut = torch.zeros(steps, E), torch.zeros(steps, E), torch.zeros(steps, E)
    roll = Rollout([], [], rewards, dones, cut, [], [], [])
    attempts = [[] for _ in envs]  # per env: this rollout's attempts of its current episode
    for t in range(steps):
        t0 = time.perf_counter()
        gens = policy.generate(obs, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
        roll.gen_seconds += time.perf_counter() - t0
        for e, (env, gen) in enumerate(zip(envs, gens)):
            expected = env.oracle_response()  # shown beside the model's answer in the samples
            next_obs, reward, terminated, truncated, info = env.step(gen.text)
            verdict = info["verdict"]
            roll.obs.append(obs[e])
            roll.responses.append(list(gen.token_ids))
            roll.outcomes.append(verdict.outcome)
            roll.tries.append(info["attempt"])
            roll.gen_tokens += len(gen.token_ids)
            rewards[t, e], dones[t, e], cut[t, e] = reward, float(terminated or truncated), float(gen.cut_off)
            attempts[e].append({"attempt": info["attempt"], "answer": gen.text, "outcome": verdict.outcome,
                                "reward": reward, "feedback": verdict.message, "expected": expected})
            if terminated or truncated:  # episode over: keep its record, start the next one
                roll.episodes.append({"prompt": episode_gist(obs[e]), "attempts": attempts[e],
                                      "success": bool(terminated)})
                attempts[e] = []
                next_obs, _ = env.reset()
            obs[e] = next_obs
    roll.last_obs = list(obs)
    return roll


def action_logprob(scores, answer, thought_prob_coef: float) -> torch.Tensor:
    """Turn-level log pi(a|s) of each attempt (the paper's, from RL4VLM's thought_prob_coef).

    Example, response `{"number": [4, 6], "formula": "4*6=24"}<eos>` with answer key "formula":
        tokens       {"number": [4, 6], "  formula": "4*6=24"}  <eos>  <pad>
        scores.mask   1   1  ...        1    1  ...         1    1      0
        answer        0   0  ...        0    1  ...         1    1      0     (policy.answer_mask)
    -> 0.5 * (log-probs where mask and not answer) + (log-probs where answer).
    """
    answer = answer.to(scores.mask.device).float() * scores.mask.float()  # [B, R]
    thought = scores.mask.float() - answer                               # [B, R] 1 before the answer key
    weights = thought_prob_coef * thought + answer                       # [B, R]
    return (scores.logprobs * weights).sum(-1)                           # [B]


def turn_logprob(policy, obs, responses, args, answer_key, detach_value=False):
    """policy.score + the turn-level action log-prob [b]: what the scoring pass and the update call."""
    s = policy.score(obs, responses, temperature=args.temperature, detach_value=detach_value)
    answer = policy_lib.answer_mask(policy.tokenizer, responses, answer_key, s.mask.shape[1])  # [b, R]
    return s, action_logprob(s, answer, args.thought_prob_coef)


@torch.no_grad()
def score_rollout(policy, obs, responses, args, answer_key):
    """Old action log-probs [N], values [N], the sampled-token entropy estimate and the tokens of
    each attempt [N] (prompt + response, padding excluded, as sft.py counts them: compute axis),
    on the CPU with the rest of the rollout buffer (rewards, dones) for GAE.

    The same policy.score the update calls, in eval mode, at the sampling temperature: the first
    minibatch of the update then sees ratio == 1 exactly.
    """
    policy.eval()
    micro = args.minibatch_size // args.grad_accum
    n = len(obs)
    logps, values, tokens, nll = torch.zeros(n), torch.zeros(n), torch.zeros(n), 0.0  # [N] each
    order = length_sorted(range(n), obs, responses)
    for i in range(0, n, micro):
        mb = order[i:i + micro]
        o, r = [obs[j] for j in mb], [responses[j] for j in mb]
        s, logp = turn_logprob(policy, o, r, args, answer_key)
        logps[mb] = logp.float().cpu()                                                      # [b]
        values[mb] = s.values.float().cpu()                                                 # [b]
        tokens[mb] = (s.prompt_tokens + s.mask.sum(1)).float().cpu()                       # [b]
        nll -= float((s.logprobs * s.mask).sum())
    return logps, values, nll / max(float(sum(len(r) for r in responses)), 1.0), tokens


def length_sorted(indices, obs, responses) -> list:
    """The indices ordered by prompt length, then response length, so that each micro-batch
    pads little (a revision prompt holds the earlier attempts and can be 3x a first one).
    Summed gradients do not depend on how a minibatch is split into micro-batches."""
    def key(i):
        return (sum(len(_user_text(m)) for m in obs[i]["messages"]), len(responses[i]))
    return sorted(indices, key=key)


def bootstrap_values(policy, obs, args, answer_key) -> torch.Tensor:
    """V(s) of the environments' current observations [E] (the value head reads the last prompt
    token, so the one-token dummy response after it does not change the value)."""
    return score_rollout(policy, obs, [[policy.tokenizer.eos_token_id]] * len(obs), args, answer_key)[1]


# ---- ALGO LOGIC: advantages (GAE over the attempts of each environment's trajectory) --------------

def compute_gae(rewards, values, dones, last_values, gamma: float, lam: float):
    """Generalised advantage estimation; an attempt with done=1 ended its episode (terminal).

    rewards, values, dones: [T, E]; last_values: [E] = V(current obs) after the rollout.
    Worked example, one env, gamma 0.9, lambda 0.95, the episode ends at t=1:
        rewards [-1, 5, -2], values [1, 2, 0.5], dones [0, 1, 0], last_value 1
        t=2: delta = -2 + 0.9 * 1 - 0.5 = -1.6              A2 = -1.6
        t=1: delta =  5 - 2 = 3 (terminal: no bootstrap)    A1 = 3
        t=0: delta = -1 + 0.9 * 2 - 1 = -0.2                A0 = -0.2 + 0.9 * 0.95 * 3 = 2.365
    Returns (advantages [T, E], returns = advantages + values [T, E]).
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)                      # [T, E]
    gae = torch.zeros_like(last_values)                         # [E]
    for t in reversed(range(T)):
        next_values = last_values if t == T - 1 else values[t + 1]   # [E]
        nonterminal = 1.0 - dones[t]                                 # [E]
        delta = rewards[t] + gamma * next_values * nonterminal - values[t]
        gae = delta + gamma * lam * nonterminal * gae
        advantages[t] = gae
    return advantages, advantages + values


def normalize_advantages(adv: torch.Tensor) -> torch.Tensor:
    """(adv - mean) / std over the whole batch, all ranks included."""
    s, sq, n = policy_lib.all_sum([float(adv.sum()), float((adv ** 2).sum()), float(adv.numel())])
    mean = s / n
    std = math.sqrt(max(sq / n - mean ** 2, 0.0))
    return (adv - mean) / (std + 1e-8)


# ---- ALGO LOGIC: the PPO update -------------------------------------------------------------------

class NonFiniteLoss(RuntimeError):
    """A NaN/inf loss or gradient norm: the run stops before the optimizer step."""


def ppo_loss(new_logp, new_values, old_logp, old_values, adv, returns, clip_coef, vf_clip=0.0, vf_coef=0.5):
    """Clipped surrogate + (optionally clipped) value loss of one micro-batch; tensors [b].

    Example, clip 0.1, one attempt with advantage +1 whose log-prob rose by 0.2 (ratio 1.22):
    min(1.22 * 1, 1.1 * 1) = 1.1, so the policy loss is -1.1 and its gradient is 0: the update
    stops pushing an attempt once its ratio has left [0.9, 1.1] in the advantage's direction.
    """
    logratio = new_logp - old_logp                                        # [b]
    ratio = logratio.exp()                                                # [b]
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    v_loss = (new_values - returns) ** 2                                  # [b]
    if vf_clip > 0:  # the new value may move at most vf_clip from the old one
        v_clipped = old_values + (new_values - old_values).clamp(-vf_clip, vf_clip)  # [b]
        v_loss = torch.max(v_loss, (v_clipped - returns) ** 2)
    v_loss = 0.5 * v_loss.mean()
    with torch.no_grad():  # diagnostics (CleanRL): k3 estimator of KL(old || new), clipped share
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1).abs() > clip_coef).float().mean()
    stats = {"policy_loss": pg_loss.item(), "value_loss": v_loss.item(), "approx_kl": approx_kl.item(),
             "clipfrac": clipfrac.item()}
    return pg_loss + vf_coef * v_loss, stats


def kl_penalty(logprobs, ref_logprobs, mask) -> torch.Tensor:
    """KL(pi || pi_ref) of each attempt [B]: Schulman's k3 estimate on every sampled response token,
    exp(d) - d - 1 with d = log pi_ref - log pi (>= 0, unbiased), summed over the response.
    logprobs, ref_logprobs, mask: [B, R] (policy.Scores). Off in the paper (--kl-coef 0).

    Example, a two-token answer whose tokens the policy now finds more likely than the reference:
        logprobs [-0.1, -0.2], ref_logprobs [-0.3, -0.2] -> d [-0.2, 0]
        -> exp(-0.2) + 0.2 - 1 = 0.0187 for the first token, 0 for the second: KL 0.0187.
    """
    d = ref_logprobs - logprobs                          # [B, R]
    return ((d.exp() - d - 1) * mask).sum(-1)            # [B]


@torch.no_grad()
def reference_logprobs(ref, obs, responses, args) -> list:
    """The frozen initial policy's per-token log-probs of every attempt's response ([len(response)]
    each), once per rollout: the KL penalty's reference side does not change during the update."""
    micro = args.minibatch_size // args.grad_accum
    out = []
    for i in range(0, len(obs), micro):
        s = ref.score(obs[i:i + micro], responses[i:i + micro], temperature=args.temperature)
        out += [lp[:len(r)].float().cpu() for lp, r in zip(s.logprobs, responses[i:i + micro])]
    return out


def ppo_update(policy, optimizer, params, batch, args, answer_key) -> dict:
    """--ppo-epochs epochs of shuffled minibatches; `batch` holds obs, responses and [N] tensors
    old_logp, old_values, advantages, returns, and with --kl-coef > 0 "ref_logprobs" (reference_logprobs).
    Returns the mean diagnostics and tokens trained on; approx_kl and clipfrac leave out the first
    minibatch, whose ratio is exactly 1."""
    policy.eval()  # dropout off: the same function as the scoring pass
    n = len(batch["obs"])
    micro = args.minibatch_size // args.grad_accum
    sums, counts, tokens, grad_norms = {}, {}, 0, []
    for _ in range(args.ppo_epochs):
        perm = torch.randperm(n)                                          # [N]
        for start in range(0, n, args.minibatch_size):
            idx = length_sorted(perm[start:start + args.minibatch_size].tolist(),
                                batch["obs"], batch["responses"])         # [minibatch]
            moved = bool(grad_norms)  # after the first optimizer step the policy has moved
            for m in range(0, len(idx), micro):
                mb = idx[m:m + micro]
                s, new_logp = turn_logprob(policy, [batch["obs"][i] for i in mb],
                                           [batch["responses"][i] for i in mb], args, answer_key,
                                           detach_value=args.critic == "detached")  # new_logp [b]
                old_logp, old_values, adv, ret = (batch[k][mb].to(new_logp.device)  # buffer: CPU
                                                  for k in ("old_logp", "old_values", "advantages", "returns"))
                loss, stats = ppo_loss(new_logp, s.values.float(), old_logp, old_values, adv, ret,
                                       args.clip_coef, args.vf_clip, args.vf_coef)
                if "ref_logprobs" in batch:  # the optional KL penalty to the initial policy
                    ref_lp = torch.nn.utils.rnn.pad_sequence([batch["ref_logprobs"][i] for i in mb],
                                                             batch_first=True).to(s.logprobs.device)  # [b, R]
                    kl = kl_penalty(s.logprobs, ref_lp, s.mask).mean()
                    loss, stats["kl_ref"] = loss + args.kl_coef * kl, kl.item()
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"loss is {loss.item()}")
                (loss * len(mb) / len(idx)).backward()  # mean over the minibatch
                for k, v in stats.items():
                    if moved or k not in ("approx_kl", "clipfrac"):
                        sums[k], counts[k] = sums.get(k, 0.0) + v, counts.get(k, 0) + 1
                tokens += int(batch["tokens"][mb].sum())
            grad_norm = torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP2
                grad_norm = grad_norm.full_tensor()
            if not torch.isfinite(grad_norm):      # every rank sees the same reduced norm
                raise NonFiniteLoss(f"gradient norm is {grad_norm.item()}")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            grad_norms.append(float(grad_norm))
    out = {k: sums.get(k, 0.0) / counts[k] if k in counts else 0.0
           for k in ("policy_loss", "value_loss", "approx_kl", "clipfrac", "kl_ref")}
    return {**out, "grad_norm": sum(grad_norms) / len(grad_norms), "tokens": tokens}


# ---- The training loop: setup, then the update of the docstring, --updates times ------------------

def run(args) -> None:
    """PPO as `args` (parse_args) says; rank 0 logs, prints and saves (every rank takes part)."""
    rank, world, device = sft.setup_distributed()  # FSDP 1: the process group (rank 0 of 1 without torchrun)
    out = Path(args.out)
    last = checkpoints.resume_point(out, args, "ppo", ("env", "vision", "model", "seed"))  # None: a new run
    checkpoints.seed_everything(args.seed + rank)  # random, numpy, torch: seeded, not bit-exact
    env_mod = evaluate.ENVS[args.env]
    policy = load(last or args.init_path, args, device, world)  # the init (inits/gp-l), or the run's last
    optimizer = torch.optim.Adam([{"params": list(policy.model.parameters()), "lr": args.lr},
                                  {"params": list(policy.value_head.parameters()), "lr": args.vf_lr or args.lr}],
                                 eps=args.adam_eps, weight_decay=0.0)
    horizon = max(args.lr_horizon, args.updates)  # one scheduler step per update
    scheduler = sft.cosine_schedule(optimizer, total_steps=horizon, warmup_frac=args.warmup_updates / horizon)
    state = {"d_rl": 0.0, "d_buffer": 0.0, "flops_init": args.flops_init, "flops": args.flops_init,
             "init_path": args.init_path}  # what a checkpoint holds besides weights, optimizer, RNG
    if last is not None:
        state = checkpoints.load(last, policy, optimizer, scheduler, keys=state.keys())
        if rank == 0:
            print(f"resuming from {last} (update {state['step']}/{args.updates})", flush=True)
    start = state.pop("step", 0)
    # --kl-coef > 0: a frozen copy of the initial policy, the KL penalty's reference
    ref = load(state["init_path"], args, device, world, frozen=True) if args.kl_coef > 0 else None
    n_params = policy.num_params  # N of the compute axis: the language model's, not the value head's
    config = {"method": "ppo", **vars(args), "init_path": state["init_path"], "world_size": world,
              "num_params": n_params, "flops_init": state["flops_init"]}
    logger = checkpoints.RunLogger(out, config, rank, resume_step=start if last else None,
                                   logs=("metrics.jsonl", "samples.jsonl"))
    if rank == 0 and last is None:
        print(f"ppo: {sft.run_name(args.env, args.vision)}, {n_params / 1e6:.2f}M parameters, {world} rank(s) x "
              f"{args.num_envs} envs, {args.rollout_steps} attempts/rank/update, {args.updates} updates, "
              f"init {args.init_path}, out {out}", flush=True)
    # this rank's environments: seeds distinct per (seed, rank, env, start), so a resumed run deals
    # new hands; the evaluation hands are disjoint from all training seeds (env modules)
    envs = [env_mod.make_env("id", vision=args.vision, max_attempts=args.max_attempts, image_size=args.image_size,
                             seed=int(np.random.SeedSequence([args.seed, rank, i, start]).generate_state(1)[0]))
            for i in range(args.num_envs)]
    obs = [env.reset()[0] for env in envs]
    timing = {"rollouts": 0.0, "updates": 0.0, "evals": 0.0}
    if start == 0:  # the initial checkpoint: the first point of every curve
        log_eval(policy, args, logger, 0, state["flops"], timing)
    bar = tqdm(total=args.updates, initial=start, desc="ppo", disable=rank != 0 or not sys.stderr.isatty())

    for update in range(start + 1, args.updates + 1):
        # ---- 1. rollout, 2. one no-grad scoring pass (old log-probs, values, bootstrap) ----
        t_roll = time.perf_counter()
        roll = collect_rollout(policy, envs, obs, args.rollout_steps // args.num_envs, args)
        old_logp, old_values, entropy, tokens = score_rollout(policy, roll.obs, roll.responses, args,
                                                              env_mod.ANSWER_KEY)              # [N] each
        last_values = bootstrap_values(policy, roll.last_obs, args, env_mod.ANSWER_KEY)       # [E]
        # ---- 3. advantages (GAE over attempts), normalised over all ranks ----
        T, E = roll.rewards.shape
        adv, ret = compute_gae(roll.rewards, old_values.view(T, E), roll.dones, last_values,
                               args.gamma, args.gae_lambda)                                     # [T, E] each
        batch = {"obs": roll.obs, "responses": roll.responses, "old_logp": old_logp, "old_values": old_values,
                 "advantages": normalize_advantages(adv.flatten()), "returns": ret.flatten(), "tokens": tokens}
        if ref is not None:  # --kl-coef: the initial policy's log-probs of the same answers, scored once
            batch["ref_logprobs"] = reference_logprobs(ref, roll.obs, roll.responses, args)
        t_upd = time.perf_counter()
        timing["rollouts"] += t_upd - t_roll
        # ---- 4. the PPO update ----
        try:
            stats = ppo_update(policy, optimizer, list(policy.parameters()), batch, args, env_mod.ANSWER_KEY)
        except NonFiniteLoss as err:
            raise RunError(f"non-finite PPO loss at update {update} ({err}); stopped before the optimizer "
                           f"step. Last good checkpoint: {checkpoints.latest(out) or 'none'} "
                           f"(continue with --resume, e.g. with a lower --lr)") from None
        scheduler.step()
        timing["updates"] += time.perf_counter() - t_upd

        # ---- the compute axis, one line per update, two whole episodes as samples ----
        state["d_buffer"] += policy_lib.all_sum([2 * float(tokens.sum())])[0]  # no-grad: generation, scoring
        state["d_rl"] += policy_lib.all_sum([float(stats["tokens"])])[0]        # the update's forward+backward
        state["flops"] = state["flops_init"] + 6 * n_params * state["d_rl"] + 2 * n_params * state["d_buffer"]
        row = {"step": update, "flops": state["flops"], "lr": scheduler.get_last_lr()[0],
               **update_stats(roll, stats, ret.flatten(), old_values, entropy, OUTCOMES[args.env], world),
               "seconds": time.perf_counter() - t_roll}
        logger.log(row)
        samples = [ep for ep in roll.episodes if ep["attempts"][0]["attempt"] == 1][:2]  # begun in this rollout
        for ep in samples:
            logger.log({"step": update, **ep}, "samples.jsonl")  # rank 0 writes
        if rank == 0:
            print("\n".join([plots.update_line(update, args.updates, row), *plots.sample_lines(samples)]), flush=True)
        bar.update(1)
        # ---- evaluation, then the checkpoint (atomic): a checkpoint's evaluation is in the log ----
        if (args.eval_every and update % args.eval_every == 0) or update == args.updates:
            log_eval(policy, args, logger, update, state["flops"], timing)
        if (args.save_every and update % args.save_every == 0) or update == args.updates:
            checkpoints.save(out, update, policy, optimizer, scheduler, state, final=update == args.updates)
    bar.close()

    if rank == 0:
        plots.plot_run(out, out)
        split = " | ".join(f"{k} {v:.0f}s" for k, v in timing.items())
        print(f"done: {out} | time: {split}\n{plots.change_line(out)}", flush=True)  # what the run learned


# ---- plumbing: the config, warm start, evaluation, logging, samples -------------------------------

def parser() -> ArgumentParser:
    """The command line; every default is the CPU one, PAPER holds the paper's (cli.parse)."""
    p = ArgumentParser(description="\n\n".join(__doc__.split("\n\n")[:2]),  # title + launch lines
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--env", choices=sorted(evaluate.ENVS), default="generalpoints", help="task (paper: both)")
    a("--vision", action="store_true", help="VL variant: the observation is an image (paper: both)")
    a("--model", default="tiny", help="'tiny', 'tiny-large', 'tiny-vl' or a model folder (paper: Llama-3.2-11B-Vision)")
    a("--init", help="checkpoint to start from (default: inits/; 'base': --model) (paper: its SFT init)")
    a("--out", help="run folder (default runs/ppo-gp-l, -gp-vl, -virl-l, -virl-vl; -seedN for --seed N)")
    add_preset(p)
    a("--seed", type=SEED, default=0, help="seed of random/numpy/torch and of the environments (offset per rank)")
    # rollout
    a("--updates", type=COUNT, help="PPO updates (default: 100 GP, 30 V-IRL) (paper: 20 GP, 15 V-IRL)")
    a("--num-envs", type=BATCH, default=64, help="environments stepped together per rank (paper: 1 per GPU)")
    a("--rollout-steps", type=COUNT, default=256, help="attempts collected per rank per update (paper: 256 per GPU)")
    a("--max-attempts", type=ATTEMPTS, help="VIter, attempts per hand / position, at most 100 (paper: 5 GP, 2 V-IRL)")
    a("--temperature", type=POSITIVE, help="sampling temperature, also in scoring (GP 0.5, V-IRL 0.7) (paper: 0.2)")
    a("--max-new-tokens", type=COUNT, default=96, help="longest answer; a longer one is judged as is (paper: 512)")
    # the PPO update
    a("--ppo-epochs", type=COUNT, default=2, help="epochs over the rollout per update (paper: 4)")
    a("--minibatch-size", type=BATCH, default=128, help="attempts per optimizer step per rank (paper: 128)")
    a("--grad-accum", type=COUNT, help="micro-batches per minibatch and scoring batch (default: of 8) (paper: 128)")
    a("--lr", type=POSITIVE, default=1e-4, help="Adam learning rate, cosine-decayed (paper: 1e-6)")
    a("--vf-lr", type=NON_NEGATIVE, default=1e-3, help="lr of the value head's own MLP; 0 = --lr (paper: 0)")
    a("--warmup-updates", type=COUNT_OR_0, default=3, help="linear lr warm-up over the first N updates (paper: 0)")
    a("--critic", choices=["shared", "detached"], default="detached",
      help="shared: the value loss trains the language model too; detached: the head alone (paper: shared)")
    a("--lr-horizon", type=COUNT, default=200, help="the cosine spans max(this, --updates) updates (paper: 100)")
    a("--adam-eps", type=POSITIVE, default=1e-7, help="Adam epsilon (paper: 1e-7)")
    a("--clip-coef", type=POSITIVE, default=0.1, help="PPO ratio clip (paper: 0.1)")
    a("--vf-clip", type=NON_NEGATIVE, default=0.0, help="value clip around the old value, 0 = off (paper: 0.1)")
    a("--vf-coef", type=NON_NEGATIVE, default=0.5, help="value loss coefficient (paper: 0.5)")
    a("--max-grad-norm", type=POSITIVE, default=1.0, help="gradient clipping norm (paper: 0.01)")
    a("--gamma", type=SHARE, default=1.0, help="discount over attempts; 1: every attempt gets its return (paper: 0.9)")
    a("--gae-lambda", type=SHARE, default=1.0, help="GAE lambda (paper: 0.95)")
    a("--kl-coef", type=NON_NEGATIVE, default=0.2, help="weight of a k3 KL penalty to the initial policy (paper: 0)")
    a("--thought-prob-coef", type=NON_NEGATIVE, default=0.5, help="weight of the thought tokens (paper: 0.5)")
    # evaluation, checkpoints
    a("--eval-every", type=COUNT_OR_0, default=50, help="evaluate every N updates, and at the start and the end")
    a("--eval-splits", help="comma-separated (default: id,ood-rule, +ood-visual with --vision; GP also val-rule)")
    a("--eval-episodes", type=COUNT_OR_0, default=0, help="fixed episodes per split, 0 = all (paper: 234 GP, 48 V-IRL)")
    a("--eval-max-new-tokens", type=COUNT, help="longest evaluation answer (default: --max-new-tokens) (paper: 256)")
    a("--eval-attempts", type=ATTEMPTS, help="attempts per hand / position in evaluations (default: the env's VIter)")
    a("--eval-temperature", type=NON_NEGATIVE, default=0.0, help="0 = greedy (paper: the checkpoint's own settings)")
    a("--eval-samples", type=SAMPLES_OR_0, default=3, help="first and last evaluation: seeded passes at --temperature")
    a("--save-every", type=COUNT_OR_0, default=25, help="checkpoint every N updates and at the end (0: only then)")
    a("--resume", action="store_true",
      help="continue from the newest checkpoint in --out; may change: more --updates, a lower --lr, --*-every")
    a("--threads", type=THREADS, help="CPU threads of this process (default: 2, or cores / ranks)")
    return p


def parse_args(argv=None):
    """The command line (argv=None reads sys.argv), then the derived values, in one block."""
    p = parser()
    args = parse(p, argv, PAPER)
    args.updates = args.updates or (PAPER_UPDATES if args.preset == "paper" else CPU_UPDATES)[args.env]
    args.temperature = args.temperature or CPU_TEMPERATURE[args.env]  # (--preset paper: 0.2)
    args.grad_accum = args.grad_accum or args.minibatch_size // math.gcd(args.minibatch_size, 8)  # micro-batches of 8
    args.max_attempts = args.max_attempts or evaluate.ENVS[args.env].MAX_ATTEMPTS
    args.eval_max_new_tokens = args.eval_max_new_tokens or args.max_new_tokens
    args.eval_episodes = args.eval_episodes or None  # None = the paper's count
    args.image_size = evaluate.paper_image_size(args.env) if args.preset == "paper" else None  # the public sizes
    args.out = args.out or f"runs/ppo-{sft.run_name(args.env, args.vision, args.seed)}"
    if args.rollout_steps % args.num_envs:
        p.error("--rollout-steps must be a multiple of --num-envs")
    if args.rollout_steps % args.minibatch_size or args.minibatch_size % args.grad_accum:
        p.error("--minibatch-size must divide --rollout-steps and be a multiple of --grad-accum")
    if args.init is None:  # the shipped init of the tiny model's task; a real model starts from itself
        shipped = sft.INITS / sft.run_name(args.env, args.vision)
        if args.model == "tiny" and not shipped.is_dir():
            p.error(f"no shipped init for {shipped.name}: pass --init PATH (e.g. an sft.py run's final/) "
                    "or --init base")
        args.init = str(shipped) if args.model == "tiny" else "base"
    if args.init != "base" and not Path(args.init).is_dir():
        p.error(f"--init {args.init}: no such checkpoint folder")
    args.init_path = args.model if args.init == "base" else args.init
    if why := run_folder_problem(args.out, {"--model": args.model, "--init": args.init}):
        p.error(f"--out {why}")
    try:  # the init's own training compute, D_init of the compute axis; refused if of another task
        args.flops_init = 0.0 if args.init == "base" else checkpoints.init_flops(args.init, args.env, args.vision)
        args.eval_splits = ",".join(evaluate.parse_splits(
            args.eval_splits or "id,ood-rule" + (",ood-visual" if args.vision else ""), args.env, args.vision))
    except ValueError as err:  # RunError of a trainer_state.json, or an unknown split
        p.error(f"{'' if isinstance(err, RunError) else '--eval-splits: '}{err}")
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # torchrun: FSDP ranks must make the same generate() calls
        if args.eval_temperature:  # an explicit --eval-temperature > 0
            p.error("under torchrun evaluate greedily (--eval-temperature 0): FSDP ranks must make the same "
                    "generate() calls")
        if (args.eval_temperature is None or args.eval_samples) and int(os.environ.get("RANK", 0)) == 0:
            print("note: under torchrun the evaluation is greedy only", flush=True)
        args.eval_temperature, args.eval_samples = 0.0, 0  # sampled episodes end at different times
    return args


def load(path, args, device, world, frozen=False):
    """The policy at `path` (torchrun: sharded with FSDP2 by sft.shard: blocks, root, value head);
    frozen: eval mode, no gradients (the KL penalty's reference)."""
    try:
        policy = policy_lib.load_policy(path, vision=args.vision, seed=args.seed, device=device,
                                        threads=args.threads or (None if world > 1 else min(2, os.cpu_count() or 1)))
    except ValueError as err:  # not a model folder, a text-only model with --vision, ...
        raise RunError(str(err)) from None
    if frozen:
        policy.eval().requires_grad_(False)  # an nn.Module: the model and the value head
    else:  # before any work: the longest rollout and evaluation must fit the context
        evaluate.check_context(policy, args.env, args.vision, args.image_size, [
            ("id", args.max_attempts, args.max_new_tokens, ("--max-new-tokens", "--max-attempts"), True),
            (args.eval_splits, args.eval_attempts, args.eval_max_new_tokens,
             ("--eval-max-new-tokens", "--eval-attempts"), False)])
    if world > 1:
        sft.shard(policy)
    return policy


def log_eval(policy, args, logger, step, flops, timing) -> None:
    """--eval-splits on the fixed episodes, logged and printed: "eval" greedy (or --eval-temperature), at the start
    and the end "eval_sampled": --eval-samples seeded passes at --temperature (forking torch's RNG)."""
    began = time.perf_counter()
    common = dict(env=args.env, splits=tuple(args.eval_splits.split(",")), vision=args.vision,
                  n=args.eval_episodes, attempts=args.eval_attempts, max_new_tokens=args.eval_max_new_tokens,
                  image_size=args.image_size, batch_size=args.num_envs)  # as many per generate() as a rollout
    record = {"step": step, "flops": flops,
              "eval": evaluate.evaluate(policy, temperature=args.eval_temperature, **common)}
    if args.eval_samples and step in (0, args.updates):  # greedy is the cheap curve
        record["eval_sampled"] = evaluate.evaluate(policy, temperature=args.temperature, samples=args.eval_samples,
                                                   sample_seed=args.seed, **common)
    timing["evals"] += time.perf_counter() - began
    logger.log(record)
    if logger.enabled:  # rank 0
        print(plots.eval_line(record), flush=True)


def update_stats(roll, stats, ret, old_values, entropy, outcomes, world) -> dict:
    """The per-update diagnostics: rollout counts summed over ranks, PPO stats averaged. episode_success: episodes
    ended in this rollout and solved (the RL curve; update 1 favours quick ones); first/revision_success per attempt."""
    first = [o == "correct" for o, k in zip(roll.outcomes, roll.tries) if k == 1]
    later = [o == "correct" for o, k in zip(roll.outcomes, roll.tries) if k > 1]
    ppo_keys = ("policy_loss", "value_loss", "approx_kl", "clipfrac", "kl_ref", "grad_norm")
    local = {"n": len(roll.outcomes), "reward": float(roll.rewards.sum()), "first": len(first),
             "first_ok": sum(first), "later": len(later), "later_ok": sum(later),
             "episodes": len(roll.episodes), "episodes_ok": sum(ep["success"] for ep in roll.episodes),
             "resp_len": sum(len(r) for r in roll.responses), "cut": float(roll.cut_off.sum()),
             "gen_tokens": roll.gen_tokens, "gen_seconds": roll.gen_seconds,
             "var_res": float((ret - old_values).var()), "var_ret": float(ret.var()), "entropy": entropy,
             **{f"n_{k}": sum(o == k for o in roll.outcomes) for k in outcomes}, **{k: stats[k] for k in ppo_keys}}
    g = dict(zip(local, policy_lib.all_sum(list(local.values()))))
    n = g["n"]
    return {"episode_success": g["episodes_ok"] / g["episodes"] if g["episodes"] else None,
            "first_success": g["first_ok"] / g["first"] if g["first"] else None,
            "revision_success": g["later_ok"] / g["later"] if g["later"] else None,
            "reward": g["reward"] / n, "outcomes": {k: g[f"n_{k}"] / n for k in outcomes},
            **{k: g[k] / world for k in ppo_keys},
            "explained_variance": 1 - g["var_res"] / g["var_ret"] if g["var_ret"] > 0 else None,
            "entropy": g["entropy"] / world, "response_len": g["resp_len"] / n, "cut_off": g["cut"] / n,
            "tokens_per_s": g["gen_tokens"] / max(g["gen_seconds"] / world, 1e-9)}  # generated / time


def main(argv=None) -> None:
    """ppo.py's command line: cli.main runs it, a RunError is one line and exit status 1."""
    cli.main(run, parse_args, argv)


if __name__ == "__main__":
    main()
