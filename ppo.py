"""PPO with a value head and verifier revision: the RL arm of "SFT Memorizes, RL Generalizes".

    python ppo.py --env generalpoints             # the main job: PPO from the shipped inits/gp-l (README: its time)
    python ppo.py --env virl                      # V-IRL-L from inits/virl-l
    python ppo.py --env generalpoints --init runs/sft-gp-l/final --updates 60 --out runs/ppo-long
    python ppo.py --env virl --vision --init runs/headline/virl-vl/init/final     # V-IRL-VL (GP-VL likewise)
    python ppo.py --env generalpoints --resume    # continue a killed run from its last checkpoint
    torchrun --standalone --nproc_per_node=2 ppo.py --env generalpoints     # FSDP on CPU (gloo)
    torchrun --standalone --nproc_per_node=8 ppo.py --env generalpoints --model PATH --init CKPT --preset paper
    # several nodes: run on each with NODE_RANK = 0, 1, ... (a shared file system for runs/)
    torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node=8 --master_addr=$HEAD_NODE \\
        --master_port=29500 ppo.py --env virl --vision --model PATH --init CKPT --preset paper

One update, in the order the code runs (the paper's RL with sequential revision; public code: rl/trainer):
  1. rollout: every rank steps --num-envs environments together. Each iteration generates one answer
     for all of them in a single batched call, the verifiers judge the answers, and a failed attempt
     continues the same conversation with "You failed this trial because <reason>" (VIter: up to 5
     attempts per hand in GeneralPoints, 2 per position in V-IRL). Each attempt is one PPO step.
  2. scoring: one no-grad pass of policy.score, the function the update itself uses, gives the old
     action log-prob and the value of every attempt, and the bootstrap value of unfinished episodes.
  3. GAE over the attempts of each environment's trajectory; advantages normalised over the batch.
  4. --ppo-epochs epochs of shuffled minibatches: clipped surrogate + value loss, gradient
     clipping, Adam, one cosine learning-rate step per update.

Exactly the paper's (the public code's rl/trainer and rl/configs): turn-level PPO, i.e. one value
(MLP value head on the last layer's hidden state at the last prompt token) and one action log-prob
per attempt, log pi(a|s) = 0.5 x (sum over "thought" tokens before the answer key) + (sum over
tokens from the answer key on) (RL4VLM's thought_prob_coef), with log-probs of logits / the
sampling temperature in fp32; normalised advantages; ratio clip 0.1; value coefficient 0.5; no
entropy bonus (the public code declares entropy_coef 0.01 but never computes it); Adam eps 1e-7,
weight decay 0, cosine decay; the reward is the verifier's, per attempt. `--preset paper` also
restores the rest (explicit flags still win): GAE gamma 0.9, lambda 0.95, no KL penalty and no
reference model, the value loss through the shared trunk, lr 1e-6 for everything with no warm-up,
value clip 0.1, 4 epochs, max grad norm 0.01, T 0.2, 256 attempts per GPU from 1 environment,
minibatch 128 = 128 micro-batches of 1, 20 updates (GP) / 15 (V-IRL), 512 new tokens, the full
evaluation sets.

Where the CPU defaults differ, and why (measured on the tiny 1.42M-parameter model, 2 cores,
from inits/gp-l; experiments/rl_ablation.py and README "What the main job shows"):
  - credit: --gamma 1 --gae-lambda 1, every attempt of a hand gets the whole episode's return (the
    paper: 0.9 / 0.95, under which a revision's success barely reaches the attempt before it).
  - --kl-coef 0.2, a KL penalty to the initial policy (TRL and verl offer one; the paper: none):
    at lr 1e-4 without it, 20 updates moved ID success 57.0 -> 48.4% greedy; with it 57.0 -> 62.5%.
  - lr 1e-4 with a 3-update linear warm-up, then a cosine over 200 updates, so 100 updates end at half
    the peak (the paper: 1e-6 for 11B parameters, no warm-up, a horizon of 100 for 20 updates): a
    fresh Adam's first steps are sign steps of size lr on every weight.
  - --critic detached, the value loss trains the value head alone (the paper: shared), whose own MLP
    learns at 1e-3 with the value loss unclipped: it starts from random weights and returns span
    -10..+5 (explained variance stayed ~0 at the policy's lr with a 0.1 clip).
  - T 0.7 (the paper: 0.2, which barely explores a tiny model; at 1.0 fewer first answers are right).
  - 256 attempts per update from 64 environments, 2 epochs of minibatches of 128 (micro-batches of
    8), max grad norm 1.0, 100 updates (the paper: 256 attempts from 1 environment per GPU, 4 epochs
    of 128, 0.01, 20 updates).
  - evaluation on the paper's 234 fixed hands per split, greedy every 50 updates, and by sampling
    (3 seeded passes at the rollout temperature) at the start and the end.
  - Tried and left off (the paper's values): --max-attempts 1 (with --eval-attempts 5), --vf-clip;
    lr 2e-4 (seed 0: 61.1% at 50 updates against 63-65% at 1e-4), a horizon of 100 (seed 0: +8.5
    greedy, +4.0 on 1,200 held-out hands, against +8.1 and +5.5 with 200).
  - 2 torch threads (--threads), 1.5x faster per update than 1 on a quiet 2-core machine.
Where the algorithm differs from the public code (its extra per-violation penalties, its ratio > 10
and NaN workarounds, bootstrapping, dropout, the lr horizon): README "Where this differs from the paper".

Scale: under torchrun each rank steps its own environments (seeds offset by rank), the model is
sharded with FSDP2 (sft.shard) which reduces the gradients, advantages are normalised over all
ranks, and rank 0 logs, prints and saves. Seeded, not bit-exact (sampling, thread scheduling).
Compute axis (the paper's x-axis): flops = 6 N (D_init + D_rl) + 2 N D_buffer, with 6 N D_init the init's own
training compute (the "flops" in its trainer_state.json, 0 if none), D_rl the non-padding tokens
(prompt + response) of every forward+backward in the PPO epochs, and D_buffer those of the two
no-grad passes over every rollout attempt: generation and the scoring pass, counted as sft.py
counts its batches (an image is its placeholder tokens in input_ids).
"""

import argparse
import functools
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import transformers
from tqdm import tqdm

import checkpoints
import evaluate
import plots
import policy as policy_lib
import sft
from evaluate import COUNT, COUNT_OR_0, SEED, number  # argparse types: nan, inf, out of range -> one line

# The paper's values (the public code's rl/configs), applied by --preset paper to every
# flag left unset on the command line.
PAPER = dict(lr=1e-6, vf_lr=0.0, vf_clip=0.1, ppo_epochs=4, temperature=0.2, max_grad_norm=0.01, num_envs=1,
             rollout_steps=256, minibatch_size=128, grad_accum=128, updates=None, eval_episodes=0, max_new_tokens=512,
             warmup_updates=0, critic="shared", lr_horizon=100, gamma=0.9, gae_lambda=0.95, kl_coef=0.0, eval_samples=0,
             eval_max_new_tokens=256, eval_temperature=None)
PAPER_UPDATES = {"generalpoints": 20, "virl": 15}
CPU_UPDATES = {"generalpoints": 100, "virl": 30}
INITS = Path(__file__).resolve().parent / "inits"  # the shipped initial checkpoints (experiments/make_init.py)
# Verifier outcomes (generalpoints.py / virl.py); the per-update line reports the share of each.
OUTCOMES = {"generalpoints": ("correct", "wrong_value", "wrong_numbers", "illegal_formula", "wrong_cards"),
            "virl": ("correct", "wrong_action", "wrong_observation")}


def parse_args(argv=None) -> argparse.Namespace:
    p = evaluate.ArgumentParser(description="\n\n".join(__doc__.split("\n\n")[:2]),  # title + launch lines
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--env", choices=sorted(evaluate.ENVS), default="generalpoints", help="task (the paper: both)")
    a("--vision", action="store_true", help="VL variant: the observation is an image (GP-VL, V-IRL-VL)")
    a("--model", default="tiny", help="'tiny' / 'tiny-large' / 'tiny-vl' (built in code) or a local model path "
      "(the paper: Llama-3.2-11B-Vision-Instruct)")
    a("--init", default=None, help="checkpoint to start PPO from (the paper: its released SFT-initialised "
      "checkpoints); default for the tiny model: the shipped inits/gp-l (inits/virl-l for --env virl), built by "
      "experiments/make_init.py; with --model PATH: the model itself; 'base' = --model itself")
    a("--out", default=None, help="run folder (default runs/ppo-gp-l, -gp-vl, -virl-l, -virl-vl; -seedN added for "
      "--seed N > 0)")
    a("--preset", choices=["cpu", "paper"], default="cpu", help="'paper' = the paper's hyperparameters for a real "
      "checkpoint on GPUs")
    a("--seed", type=SEED, default=0, help="seed of random/numpy/torch and of the environments (offset per rank)")
    # rollout
    a("--updates", type=COUNT, default=None, help="PPO updates (the paper: 20 GP / 15 V-IRL; CPU default 100 GP / "
      "30 V-IRL)")
    a("--num-envs", type=COUNT, default=64, help="environments stepped together per rank (the paper: 1 per GPU)")
    a("--rollout-steps", type=COUNT, default=256, help="attempts collected per rank per update (the paper: 256 per "
      "GPU x 8)")
    a("--max-attempts", type=COUNT, default=None, help="VIter, attempts per hand/position (the paper: 5 GP / 2 V-IRL)")
    a("--temperature", type=number(above=0), default=0.7, help="sampling temperature, > 0: it also divides the "
      "logits when scoring, PPO needs those log-probs (the paper: 0.2)")
    a("--max-new-tokens", type=COUNT, default=96, help="longest answer; a longer one is cut off and judged as is "
      "(the paper: 512)")
    # the PPO update
    a("--ppo-epochs", type=COUNT, default=2, help="epochs over the rollout per update (the paper: 4)")
    a("--minibatch-size", type=COUNT, default=128, help="attempts per optimizer step per rank (the paper: 128 = 1 x "
      "128 accumulation)")
    a("--grad-accum", type=COUNT, default=None, help="micro-batches per minibatch, gradients accumulated; also the "
      "scoring pass's batch (default: micro-batches of gcd(--minibatch-size, 8), 1.8x faster than 64 on 2 CPU cores, "
      "benchmarks/train_speed.py; the paper: 128)")
    a("--lr", type=number(above=0), default=1e-4, help="Adam learning rate, cosine-decayed (the paper: 1e-6)")
    a("--vf-lr", type=number(at_least=0), default=1e-3, help="learning rate of the value head's own MLP; 0 = --lr "
      "(the paper: one lr for all)")
    a("--warmup-updates", type=COUNT_OR_0, default=3, help="linear lr warm-up over the first N updates: a fresh "
      "Adam's first step is a sign step of size lr on every weight (the paper: 0)")
    a("--critic", choices=["shared", "detached"], default="detached", help="shared: the value loss also trains the "
      "language model under the value head (the paper); detached: it trains the value head alone")
    a("--lr-horizon", type=COUNT, default=200, help="the cosine decay spans max(this, --updates) updates: 200 for 100 "
      "updates ends at half the peak lr (the public code: lr_max_steps 100 for 20 updates, near the peak)")
    a("--adam-eps", type=number(above=0), default=1e-7, help="Adam epsilon (the paper: 1e-7)")
    a("--clip-coef", type=number(above=0), default=0.1, help="PPO ratio clip (the paper: 0.1)")
    a("--vf-clip", type=number(at_least=0), default=0.0, help="value clip around the old value, 0 = off (the paper: "
      "0.1, its clip_param; off on the CPU so a fresh head can reach returns of -10..+5)")
    a("--vf-coef", type=number(at_least=0), default=0.5, help="value loss coefficient (the paper: 0.5)")
    a("--max-grad-norm", type=number(above=0), default=1.0, help="gradient clipping norm (the paper: 0.01)")
    a("--gamma", type=number(at_least=0, at_most=1), default=1.0, help="discount over attempts; 1 with --gae-lambda "
      "1 credits every attempt with the whole episode's reward (the paper: 0.9)")
    a("--gae-lambda", type=number(at_least=0, at_most=1), default=1.0, help="GAE lambda (the paper: 0.95)")
    a("--kl-coef", type=number(at_least=0), default=0.2, help="weight of a KL penalty to the frozen initial policy "
      "(k3 estimate summed over each answer's tokens; TRL and verl offer one); its reference model is loaded only "
      "when > 0 (the paper: 0, no reference model)")
    a("--thought-prob-coef", type=number(at_least=0), default=0.5, help="weight of the tokens before the answer key "
      "in the action log-prob (the paper: 0.5)")
    # evaluation, checkpoints
    a("--eval-every", type=COUNT_OR_0, default=50, help="evaluate every N updates, and always at the start and the "
      "end (0: only those); a greedy evaluation of both splits costs about as much as 3 updates on the CPU")
    a("--eval-splits", default=None, help="comma-separated splits to evaluate (default: id,ood-rule, and ood-visual "
      "with --vision; GeneralPoints also knows val-rule)")
    a("--eval-episodes", type=COUNT_OR_0, default=0, help="fixed hands/routes per split, capped at the split's set "
      "(0 = the paper's full set: 234 GP / 48 V-IRL)")
    a("--eval-max-new-tokens", type=COUNT, default=None, help="longest answer in evaluations (default: "
      "--max-new-tokens; the paper: 256)")
    a("--eval-attempts", type=COUNT, default=None, help="attempts per hand/position in evaluations (default: the "
      "env's VIter, 5 GP / 2 V-IRL, whatever --max-attempts trains with)")
    a("--eval-temperature", type=number(at_least=0), default=0.0, help="temperature of the main evaluation (0 = "
      "greedy; --preset paper: the checkpoint's own generation settings)")
    a("--eval-samples", type=COUNT_OR_0, default=3, help="at the first and the last evaluation, also evaluate by "
      "sampling at the rollout --temperature, this many seeded passes over the same episodes (0 = off)")
    a("--save-every", type=COUNT_OR_0, default=25, help="checkpoint every N updates and at the end (0: only then)")
    a("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    a("--threads", type=COUNT, default=None, help="CPU threads of this process (default: 2, or cores / ranks under "
      "torchrun; 2 ran an update 1.5x faster than 1 on a quiet 2-core machine; beside another busy process use 1, "
      "benchmarks/README.md)")
    args = p.parse_args(argv)
    if args.preset == "paper":  # paper values for every flag not given explicitly
        p.set_defaults(**PAPER)
        args = p.parse_args(argv)
    # derived values, checked
    if args.updates is None:
        args.updates = (PAPER_UPDATES if args.preset == "paper" else CPU_UPDATES)[args.env]
    if args.grad_accum is None:  # micro-batches of 8 (or fewer, when that does not divide)
        args.grad_accum = args.minibatch_size // math.gcd(args.minibatch_size, 8)
    if args.max_attempts is None:
        args.max_attempts = evaluate.ENVS[args.env].MAX_ATTEMPTS
    args.eval_max_new_tokens = args.eval_max_new_tokens or args.max_new_tokens
    # the public sizes under --preset paper (1200 px cards, 2405 px grids), the env's CPU size otherwise
    args.image_size = evaluate.paper_image_size(args.env) if args.preset == "paper" else None
    if args.out is None:
        args.out = f"runs/ppo-{sft.run_name(args.env, args.vision, args.seed)}"
    if why := evaluate.out_problem(args.out):
        p.error(f"--out {why}")
    if args.rollout_steps % args.num_envs:
        p.error("--rollout-steps must be a multiple of --num-envs")
    if args.rollout_steps % args.minibatch_size or args.minibatch_size % args.grad_accum:
        p.error("--minibatch-size must divide --rollout-steps and be a multiple of --grad-accum")
    if args.init is None:  # the shipped init of the tiny model's task; a real model starts from itself
        shipped = INITS / sft.run_name(args.env, args.vision)
        if args.model != "tiny":
            args.init = "base"
        elif not shipped.is_dir():
            p.error(f"no shipped init for {shipped.name}: pass --init PATH (e.g. an sft.py run's final/) or "
                    f"--init base")
        else:
            args.init = str(shipped)
    if args.init != "base" and not Path(args.init).is_dir():
        p.error(f"--init {args.init}: no such checkpoint folder")
    try:
        args.eval_splits = ",".join(evaluate.parse_splits(
            args.eval_splits or "id,ood-rule" + (",ood-visual" if args.vision else ""), args.env))
    except ValueError as err:
        p.error(f"--eval-splits: {err}")
    args.eval_episodes = args.eval_episodes or None  # None = the paper's count
    return args


# ---------------------------------------------------------------------------------------------
# ALGO LOGIC: rollout (batched environments, one PPO step per attempt)
# ---------------------------------------------------------------------------------------------

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
    episodes: list = field(default_factory=list)  # finished episodes, for samples and success
    gen_tokens: int = 0             # tokens generated
    gen_seconds: float = 0.0


def _user_text(message: dict) -> str:
    return " ".join(part.get("text", "") for part in message["content"] if part.get("type") == "text")


def new_tracker(obs: dict) -> dict:
    """The record of an episode in progress: the gist of its prompt (GP-L's cards line, V-IRL's
    latest observations, else the prompt's tail) and its attempts."""
    text = _user_text(obs["messages"][0])
    lines = [ln for ln in text.splitlines() if ln.startswith("Cards:") or re.match(r"[OA]_\d+:", ln)]
    gist = " / ".join(lines[-3:]) if lines else "..." + text[-100:]
    return {"prompt": gist + (" (+ image)" if obs.get("image") is not None else ""), "attempts": []}


def collect_rollout(policy, envs, obs, steps, args, trackers) -> Rollout:
    """Step all environments together for `steps` iterations, auto-resetting finished episodes.

    `obs` (one per env) and `trackers` (the episode in progress per env: prompt and attempts) carry
    over between updates, so episodes continue across rollouts as in CleanRL.
    """
    E = len(envs)
    rewards, dones, cut = torch.zeros(steps, E), torch.zeros(steps, E), torch.zeros(steps, E)
    roll = Rollout([], [], rewards, dones, cut, [], [], [])
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
            trackers[e]["attempts"].append({"answer": gen.text, "outcome": verdict.outcome, "reward": reward,
                                            "feedback": verdict.message, "expected": expected})
            if terminated or truncated:  # episode over: keep its record, start the next one
                roll.episodes.append({**trackers[e], "success": bool(terminated)})
                next_obs, _ = env.reset()
                trackers[e] = new_tracker(next_obs)
            obs[e] = next_obs
    roll.last_obs = list(obs)
    return roll


def answer_mask(tokenizer, responses, answer_key, width) -> torch.Tensor:
    """[B, width]: 1 from the response token where '"<answer_key>"' starts, 0 before it and on the
    padding; all 0 when the key never appears (the whole response then counts as "thought").

    The character offset of every token comes from decoding the response token by token: the
    ids may be a sampled, non-canonical tokenization, so re-tokenizing the text is not safe.
    """
    rows = []
    for response in responses:
        pieces = [_piece(tokenizer, t) for t in response]
        start, end, first = "".join(pieces).find(f'"{answer_key}"'), 0, len(response)
        for i, piece in enumerate(pieces):
            end += len(piece)  # piece i covers characters [end - len, end)
            if 0 <= start < end:
                first = i
                break
        rows.append([0] * first + [1] * (len(response) - first) + [0] * (width - len(response)))
    return torch.tensor(rows)


@functools.cache
def _piece(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id])


def action_logprob(scores, answer, thought_prob_coef: float) -> torch.Tensor:
    """Turn-level log pi(a|s) of each attempt (the paper's, from RL4VLM's thought_prob_coef).

    Example, response `{"number": [4, 6], "formula": "4*6=24"}<eos>` with answer key "formula":
        tokens       {"number": [4, 6], "  formula": "4*6=24"}  <eos>  <pad>
        scores.mask   1   1  ...        1    1  ...         1    1      0
        answer        0   0  ...        0    1  ...         1    1      0     (answer_mask)
    -> 0.5 * (log-probs where mask and not answer) + (log-probs where answer).
    """
    answer = answer.to(scores.mask.device).float() * scores.mask.float()  # [B, R]
    thought = scores.mask.float() - answer                               # [B, R] 1 before the answer key
    weights = thought_prob_coef * thought + answer                       # [B, R]
    return (scores.logprobs * weights).sum(-1)                           # [B]


def turn_logprob(policy, obs, responses, args, answer_key, detach_value=False):
    """policy.score + the turn-level action log-prob [b]: what the scoring pass and the update call."""
    s = policy.score(obs, responses, temperature=args.temperature, detach_value=detach_value)
    answer = answer_mask(policy.tokenizer, responses, answer_key, s.mask.shape[1])
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


# ---------------------------------------------------------------------------------------------
# ALGO LOGIC: advantages (GAE over the attempts of each environment's trajectory)
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# ALGO LOGIC: the PPO update
# ---------------------------------------------------------------------------------------------

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
    out["grad_norm"] = sum(grad_norms) / len(grad_norms)
    out["tokens"] = tokens
    return out


# ---------------------------------------------------------------------------------------------
# plumbing: warm start, evaluation, logging, samples
# ---------------------------------------------------------------------------------------------

def restore(last, policy, optimizer, scheduler, args, rank) -> tuple:
    """Load a checkpoint's weights, optimizer, scheduler and RNG state (checkpoints.load);
    returns (update, d_rl, d_buffer, flops_init, init_path) as saved by the run."""
    try:
        extra = checkpoints.load(last, policy, optimizer, scheduler)
        state = tuple(extra[k] for k in ("step", "d_rl", "d_buffer", "flops_init", "init_path"))
    except ValueError as err:
        sys.exit(f"error: cannot resume from {last}: {err}")
    except KeyError as key:
        sys.exit(f"error: cannot resume from {last}: its trainer_state.json has no {key}")
    if rank == 0:
        print(f"resuming from {last} (update {state[0]}/{args.updates})", flush=True)
    return state


def load(path, args, device, world, frozen=False):
    """The policy at `path` (torchrun: sharded with FSDP2 by sft.shard: blocks, root, value head);
    frozen: eval mode, no gradients (the KL penalty's reference)."""
    try:
        policy = policy_lib.load_policy(path, vision=args.vision, seed=args.seed, device=device,
                                        threads=args.threads or (None if world > 1 else min(2, os.cpu_count() or 1)))
    except ValueError as err:  # not a model folder, a text-only model with --vision, ...
        sys.exit(f"error: {err}")
    if frozen:
        policy.eval()
        for p in policy.parameters():
            p.requires_grad_(False)
    if world > 1:
        sft.shard(policy)
    return policy


def run_eval(policy, args, sampled=True) -> dict:
    """--eval-splits (ID and rule-OOD, + visual-OOD with --vision) on the fixed evaluation episodes:
    {"eval": greedy (or --eval-temperature) metrics, "eval_sampled": metrics over --eval-samples
    seeded passes at the rollout temperature, when `sampled`}. The sampling passes fork torch's RNG,
    so the training run's own random stream is the same with or without them."""
    common = dict(env=args.env, splits=tuple(args.eval_splits.split(",")), vision=args.vision,
                  n=args.eval_episodes, attempts=args.eval_attempts, max_new_tokens=args.eval_max_new_tokens,
                  image_size=args.image_size, batch_size=args.num_envs)  # as many per generate() as a rollout
    out = {"eval": evaluate.evaluate(policy, temperature=args.eval_temperature, **common)}
    if args.eval_samples and sampled:
        out["eval_sampled"] = evaluate.evaluate(policy, temperature=args.temperature, samples=args.eval_samples,
                                                sample_seed=args.seed, **common)
    return out


def change_line(metrics_path) -> str:
    """What the run learned, from its first and last evaluation in metrics.jsonl, e.g. (the main job, seed 0)
    'learned (update 0 -> 100, greedy then sampled): id 60.3% -> 68.8% (+8.5) sampled 68.1% -> 74.9% (+6.8)
    | ood-rule 0.0% -> 0.0% (+0.0) sampled 0.0% -> 0.0% (+0.0)'."""
    evals = [json.loads(x) for x in checkpoints.lines_up_to(metrics_path, math.inf).splitlines()]  # parsed lines
    evals = [r for r in evals if "eval" in r]
    if len(evals) < 2:
        return "learned: (fewer than two evaluations logged)"
    first, last = evals[0], evals[-1]

    def change(a, b):
        return f"{100 * a:.1f}% -> {100 * b:.1f}% ({100 * (b - a):+.1f})"
    parts = []
    for split, m in last["eval"].items():
        text = f"{split} {change(evaluate.headline(first['eval'][split]), evaluate.headline(m))}"
        s0, s1 = first.get("eval_sampled", {}).get(split), last.get("eval_sampled", {}).get(split)
        if s0 and s1:
            text += f" sampled {change(evaluate.headline(s0), evaluate.headline(s1))}"
        parts.append(text)
    return f"learned (update {first['step']} -> {last['step']}, greedy then sampled): " + " | ".join(parts)


def print_samples(episodes: list, k: int = 2, max_attempts_shown: int = 6) -> None:
    """Two episodes as a reader wants to see them: the task, each answer, the verdict, the
    feedback the model got and the answer the oracle would have given."""
    for j, ep in enumerate(episodes[:k]):
        status = "solved" if ep.get("success") else ("failed" if "success" in ep else "in progress")
        print(f"  sample {j + 1} ({status}, {len(ep['attempts'])} attempts): {ep['prompt']}")
        for i, a in enumerate(ep["attempts"][:max_attempts_shown]):
            verdict = f"{a['outcome']} {a['reward']:+.1f}"
            if a["outcome"] != "correct":
                verdict += f" '{a['feedback']}', expected {a['expected'][:90]!r}"
            print(f"    attempt {i + 1}: {a['answer'][:110]!r} -> {verdict}")
        if len(ep["attempts"]) > max_attempts_shown:
            print(f"    ... {len(ep['attempts']) - max_attempts_shown} more attempts")


def update_stats(roll, stats, ret, old_values, entropy, outcomes, world) -> dict:
    """The per-update diagnostics: rollout counts summed over ranks, PPO stats averaged.
    episode_success: the episodes that ended in this rollout and were solved (the RL learning curve;
    episodes straddle updates, so the first update's window favours the quickly solved ones);
    first_success / revision_success: per attempt, first attempts and revisions."""
    first = [o == "correct" for o, k in zip(roll.outcomes, roll.tries) if k == 1]
    later = [o == "correct" for o, k in zip(roll.outcomes, roll.tries) if k > 1]
    ppo_keys = ("policy_loss", "value_loss", "approx_kl", "clipfrac", "kl_ref", "grad_norm")
    local = {"n": len(roll.outcomes), "reward": float(roll.rewards.sum()), "first": len(first),
             "first_ok": sum(first), "later": len(later), "later_ok": sum(later),
             "episodes": len(roll.episodes), "episodes_ok": sum(ep["success"] for ep in roll.episodes),
             "resp_len": sum(len(r) for r in roll.responses), "cut": float(roll.cut_off.sum()),
             "gen_tokens": roll.gen_tokens, "gen_seconds": roll.gen_seconds,
             "var_res": float((ret - old_values).var()), "var_ret": float(ret.var()), "entropy": entropy,
             **{f"n_{k}": sum(o == k for o in roll.outcomes) for k in outcomes},
             **{k: stats[k] for k in ppo_keys}}
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


def print_update(update, total, row) -> None:
    def share(x):
        return "-" if x is None else f"{x:.2f}"
    shares = " ".join(f"{k} {v:.2f}" for k, v in row["outcomes"].items())
    print(f"update {update}/{total} | rollout: success {share(row['episode_success'])} reward "
          f"{row['reward']:+.2f} | solved: first {share(row['first_success'])} revision "
          f"{share(row['revision_success'])} | {shares} | vloss "
          f"{row['value_loss']:.3f} ploss {row['policy_loss']:+.4f} kl {row['approx_kl']:.4f} "
          + (f"klref {row['kl_ref']:.4f} " if row["kl_ref"] else "") + f"clip "
          f"{row['clipfrac']:.2f} ev {share(row['explained_variance'])} | lr {row['lr']:.1e} | len "
          f"{row['response_len']:.1f} cut {row['cut_off']:.2f} | {row['tokens_per_s']:.0f} tok/s | "
          f"{row['seconds']:.1f}s", flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # no per-save bars between the update lines
    rank, world, device = policy_lib.setup_distributed()
    if world > 1 and args.eval_temperature:  # an explicit --eval-temperature > 0
        sys.exit("error: under torchrun evaluate greedily (--eval-temperature 0): FSDP ranks must "
                 "make the same generate() calls")
    if world > 1 and (args.eval_temperature is None or args.eval_samples):  # sampled episodes end
        args.eval_temperature, args.eval_samples = 0.0, 0                     # at different times per rank
        if rank == 0:
            print("note: under torchrun the evaluation is greedy only: FSDP ranks must make the same "
                  "generate() calls", flush=True)
    checkpoints.seed_everything(args.seed + rank)  # random, numpy, torch: seeded, not bit-exact
    env_mod = evaluate.ENVS[args.env]
    out = Path(args.out)
    last = checkpoints.resume_point(out, args, ("env", "vision", "model", "seed"))  # None: a new run
    if args.resume and last is None and rank == 0:
        print(f"--resume: no checkpoint in {out}, starting from the beginning", flush=True)
    timing = {"rollouts": 0.0, "updates": 0.0, "evals": 0.0}

    # ---- the policy: the initial checkpoint (the shipped inits/gp-l by default, as the paper's RL
    # starts from its released SFT inits), or the run's own last checkpoint when resuming ----
    init_path = args.model if args.init == "base" else args.init
    flops_init = 0.0 if args.init == "base" else checkpoints.init_flops(args.init)
    policy = load(last or init_path, args, device, world)
    n_params = policy.num_params
    params = list(policy.parameters())  # the language model's and the value head's
    groups = [{"params": list(policy.model.parameters()), "lr": args.lr},
              {"params": list(policy.value_head.parameters()), "lr": args.vf_lr or args.lr}]
    optimizer = torch.optim.Adam(groups, eps=args.adam_eps, weight_decay=0.0)
    horizon = max(args.lr_horizon, args.updates)  # one scheduler step per update
    scheduler = sft.cosine_schedule(optimizer, total_steps=horizon, warmup_frac=args.warmup_updates / horizon)
    start, d_rl, d_buffer = 0, 0.0, 0.0
    if last is not None:  # the optimizer, scheduler, RNG and counters of the checkpoint too
        start, d_rl, d_buffer, flops_init, init_path = restore(last, policy, optimizer, scheduler, args, rank)
    # --kl-coef > 0: a frozen copy of the initial policy, the KL penalty's reference
    ref = load(init_path, args, device, world, frozen=True) if args.kl_coef > 0 else None
    config = {"method": "ppo", **vars(args), "init_path": init_path, "world_size": world,
              "num_params": n_params, "flops_init": flops_init}
    logger = checkpoints.RunLogger(out, config, rank, resume_step=start if last else None)
    samples_path = out / "samples.jsonl"
    if rank == 0 and samples_path.exists():  # keep only what the resumed checkpoint has seen
        samples_path.write_text(checkpoints.lines_up_to(samples_path, start) if last else "")
    if rank == 0 and last is None:
        print(f"ppo: {sft.run_name(args.env, args.vision)}, {n_params / 1e6:.2f}M parameters, {world} rank(s) x "
              f"{args.num_envs} envs, {args.rollout_steps} attempts/rank/update, {args.updates} updates, "
              f"init {init_path}, out {out}", flush=True)

    def flops() -> float:  # the paper's: 6 N (D_init + D_rl) + 2 N D_buffer, with flops_init = 6 N D_init
        return flops_init + 6 * n_params * d_rl + 2 * n_params * d_buffer

    def do_eval(step: int) -> None:  # sampled passes at the start and the end only: greedy is the cheap curve
        t = time.perf_counter()
        result = run_eval(policy, args, sampled=step in (0, args.updates))
        timing["evals"] += time.perf_counter() - t
        logger.log({"step": step, "flops": flops(), **result})
        if rank == 0:  # GP: success, V-IRL: per-step accuracy; greedy, then sampled
            sampled = result.get("eval_sampled", {})
            print(f"eval @ update {step}: " + " | ".join(
                f"{k} {100 * evaluate.headline(m):.1f}%"
                + (f" sampled {100 * evaluate.headline(sampled[k]):.1f}%" if k in sampled else "")
                + f" (n={m['n']})" for k, m in result["eval"].items()), flush=True)

    # ---- this rank's environments: seeds distinct per (seed, rank, env, start), so a resumed run
    # deals new hands; the evaluation hands are disjoint from all training seeds (env modules) ----
    envs = [env_mod.make_env("id", vision=args.vision, max_attempts=args.max_attempts, image_size=args.image_size,
                             seed=int(np.random.SeedSequence([args.seed, rank, i, start]).generate_state(1)[0]))
            for i in range(args.num_envs)]
    obs = [env.reset()[0] for env in envs]
    trackers = [new_tracker(o) for o in obs]
    if start == 0:
        do_eval(0)  # the initial checkpoint: the first point of every curve
    bar = tqdm(total=args.updates, initial=start, desc="ppo", disable=rank != 0 or not sys.stderr.isatty())

    for update in range(start + 1, args.updates + 1):
        # ---- rollout, then one no-grad scoring pass (old log-probs, values, bootstrap) ----
        t_roll = time.perf_counter()
        roll = collect_rollout(policy, envs, obs, args.rollout_steps // args.num_envs, args, trackers)
        old_logp, old_values, entropy, tokens = score_rollout(policy, roll.obs, roll.responses, args,
                                                              env_mod.ANSWER_KEY)              # [N] each
        last_values = bootstrap_values(policy, roll.last_obs, args, env_mod.ANSWER_KEY)       # [E]
        d_buffer += policy_lib.all_sum([2 * float(tokens.sum())])[0]  # two no-grad passes: generation, scoring
        # ---- advantages (GAE over attempts), normalised over all ranks ----
        T, E = roll.rewards.shape
        adv, ret = compute_gae(roll.rewards, old_values.view(T, E), roll.dones, last_values,
                               args.gamma, args.gae_lambda)                                     # [T, E] each
        batch = {"obs": roll.obs, "responses": roll.responses, "old_logp": old_logp, "old_values": old_values,
                 "advantages": normalize_advantages(adv.flatten()), "returns": ret.flatten(), "tokens": tokens}
        if ref is not None:  # --kl-coef: the initial policy's log-probs of the same answers, scored once
            batch["ref_logprobs"] = reference_logprobs(ref, roll.obs, roll.responses, args)
        t_upd = time.perf_counter()
        timing["rollouts"] += t_upd - t_roll
        # ---- the PPO update ----
        try:
            stats = ppo_update(policy, optimizer, params, batch, args, env_mod.ANSWER_KEY)
        except NonFiniteLoss as err:
            sys.exit(f"error: non-finite PPO loss at update {update} ({err}); stopped before the optimizer "
                     f"step. Last good checkpoint: {checkpoints.latest(out) or 'none'} "
                     f"(continue with --resume, e.g. with a lower --lr)")
        scheduler.step()
        d_rl += policy_lib.all_sum([float(stats["tokens"])])[0]
        timing["updates"] += time.perf_counter() - t_upd

        # ---- logging: one line per update, two sample episodes ----
        row = {"step": update, "flops": flops(), "lr": scheduler.get_last_lr()[0],
               **update_stats(roll, stats, ret.flatten(), old_values, entropy, OUTCOMES[args.env], world),
               "seconds": time.perf_counter() - t_roll}
        logger.log(row)
        if rank == 0:
            print_update(update, args.updates, row)
            shown = (roll.episodes + [t for t in trackers if t["attempts"]])[:2]  # finished first
            print_samples(shown)
            with samples_path.open("a") as f:
                for ep in shown:
                    f.write(json.dumps({"step": update, **ep}) + "\n")
        bar.update(1)

        # ---- checkpoint (atomic, checkpoints.py), evaluation ----
        if (args.save_every and update % args.save_every == 0) or update == args.updates:
            checkpoints.save(out, update, policy, optimizer, scheduler,
                             {"d_rl": d_rl, "d_buffer": d_buffer, "flops_init": flops_init,
                              "flops": flops(), "init_path": init_path}, final=update == args.updates)
        if (args.eval_every and update % args.eval_every == 0) or update == args.updates:
            do_eval(update)
    bar.close()

    if rank == 0:
        plots.plot_run(out, out)
        split = " | ".join(f"{k} {v:.0f}s" for k, v in timing.items())
        print(f"done: {out} | time: {split}", flush=True)
        print(change_line(out / "metrics.jsonl"), flush=True)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
