"""Evaluate a policy on the fixed ID / OOD episodes of GeneralPoints or V-IRL.

The paper's claim is a comparison between checkpoints, so every checkpoint is measured on the
same episodes: each split's evaluation episodes come from `eval_envs(split, n)` of the
environment module, a fixed list of hands / routes that is identical across calls and processes
(the paper's evaluation: 234 GP hands per split; V-IRL 48 routes for ID and rule-OOD, 2 x 9
cities for visual-OOD). Episodes use sequential revision (VIter) as in training: after a failed
attempt the model sees the verifier's message and answers again, up to `attempts` times.
All unfinished episodes of a split are stepped together, `batch_size` per `policy.generate` call.

Metrics per split (what sft.py / ppo.py log under "eval"; gp_metrics and virl_metrics define each):
GeneralPoints success (hands solved within the attempts) with its binomial stderr, first_attempt,
numbers_right, outcomes, cut_off, and with --vision recognition as the paper reports it; V-IRL
step_accuracy (rail positions answered correctly within the attempts, the paper's number),
route_success, frame_right, observation_right.

Greedy or sampled. temperature 0 is greedy (the CPU default: one number per checkpoint).
temperature > 0 samples, `samples` passes over the same episodes, pass k seeded with
sample_seed + k (torch's RNG is forked, so a training run's own stream is untouched): the
metrics are over all passes, n = episodes x samples, so the stderr shrinks with more passes.
temperature None = the checkpoint's own generation settings (its generation_config.json, as the
public evaluator samples an instruct checkpoint): `--preset paper`, with 256 new tokens and the
public image sizes.

Stand-ins that prove the pipeline itself: `--model oracle` must score 100%, `--model random` is
the floor (OraclePolicy, RandomPolicy).

Usage:
    python evaluate.py --env generalpoints --model oracle --splits id,ood-rule
    python evaluate.py --env virl --vision --model random --splits id,ood-rule,ood-visual --episodes 10
    python evaluate.py --env generalpoints --vision --model runs/gp_ppo/final --out eval.json
"""

import contextlib
import functools
import json
import math
import os
import random
import sys
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from pathlib import Path
from typing import NamedTuple

import cli  # first, before the environments' imports: a Ctrl-C while they load is one line too
from tqdm import tqdm

import generalpoints
import virl
from cli import ATTEMPTS, COUNT, SAMPLES, SEED, ArgumentParser, RunError, number, out_problem, quiet, write_atomic
from streetview import render_grid

ENVS = {"generalpoints": generalpoints, "virl": virl}  # name -> environment module
STAND_INS = ("oracle", "random")
MAX_NEW_TOKENS = 128  # the tiny model's answers: GP ~30 tokens, V-IRL ~6
PAPER_MAX_NEW_TOKENS = 256  # the public evaluator's generation_config (evaluation/configs)
BATCH_SIZE = 32


# ---------------------------------------------------------------------------------------------
# Stand-in policies: same generate() as policy.py, but they read the environments
# ---------------------------------------------------------------------------------------------
@dataclass
class StandInGeneration:
    """The fields of policy.Generation that evaluation uses (stand-ins produce no tokens)."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    cut_off: bool = False


class OraclePolicy:
    """Answers each environment's ground truth (the solver / the rail): must score 100%.

    The stand-ins need the environments, so they carry `needs_envs = True` and the loop passes
    `envs=[env of each observation]` to their generate(); a policy.py policy is called as
    generate(obs_list, temperature=..., max_new_tokens=...)."""

    needs_envs = True  # evaluate() passes the env of each observation as envs=[...]

    def generate(self, obs_list, temperature=0.0, max_new_tokens=None, envs=None):
        return [StandInGeneration(env.oracle_response()) for env in envs]


class RandomPolicy:
    """Answers random JSON of the task's format: the floor any learning must beat.

    GeneralPoints: 4 random cards of the full deck, 4 random numbers in 1..13 and a random
    formula over them ("a op b op c op d=24"): success ~0, recognition ~0. V-IRL: a random
    action of the split's action space (10 absolute / 6 relative actions) and a random
    observation: each attempt is right with probability 1/10 or 1/6. Seeded: RandomPolicy(seed)
    gives the same answers on the same episodes, whatever the batch size.
    """

    needs_envs = True
    DECK = [r + s for s in generalpoints.SUITS for r in generalpoints.RANKS]  # "AS" .. "KD"

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def generate(self, obs_list, temperature=0.0, max_new_tokens=None, envs=None):
        return [StandInGeneration(self._answer(env)) for env in envs]

    def _answer(self, env) -> str:
        if isinstance(env, virl.NavigationEnv):
            return self._virl_answer(env)
        return self._gp_answer()

    def _gp_answer(self) -> str:
        cards = self.rng.sample(self.DECK, 4)
        numbers = [self.rng.randint(1, 13) for _ in range(4)]
        ops = [self.rng.choice("+-*/") for _ in range(3)]
        formula = f"{numbers[0]}{ops[0]}{numbers[1]}{ops[1]}{numbers[2]}{ops[2]}{numbers[3]}=24"
        return json.dumps({"cards": cards, "number": numbers, "formula": formula})

    def _virl_answer(self, env) -> str:
        action = self.rng.choice(virl.action_space(env.relative))
        observation = self.rng.choice(virl.OBSERVATION_CHOICES)
        return json.dumps({"current observation": observation,
                           "current instruction": "", "action": action})


def headline(metrics: dict) -> float:
    """The split's main number: GeneralPoints success, V-IRL per-step accuracy."""
    return metrics["success"] if "success" in metrics else metrics["step_accuracy"]


def paper_image_size(env: str) -> int:
    """The public code's image size: 1200 px card table, 2405 px street-view grid (2 x 1200 + 5)."""
    return generalpoints.PAPER_IMAGE_SIZE if env == "generalpoints" else virl.PAPER_GRID_SIZE


def stand_in(model: str, seed: int = 0):
    """'oracle' or 'random' -> the stand-in policy."""
    return OraclePolicy() if model == "oracle" else RandomPolicy(seed)


# ---------------------------------------------------------------------------------------------
# The evaluation loop
# ---------------------------------------------------------------------------------------------
def binomial_stderr(p: float, n: int) -> float:
    """Standard error of a proportion p estimated from n trials: sqrt(p(1-p)/n); 0 when n=0."""
    return math.sqrt(p * (1.0 - p) / n) if n > 0 else 0.0


def _is_rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class Attempt(NamedTuple):
    """One answer given in an episode and what the environment made of it."""

    verdict: object  # generalpoints.Verdict: outcome, reward, message
    terminated: bool  # the answer ended the episode by success (GP: solved; V-IRL: stop() right)
    truncated: bool  # the answer used up the attempts: the episode ended failed
    cut_off: bool  # the answer hit max_new_tokens before its end-of-turn token
    numbers_right: bool | None = None  # GP: its "number" list held the hand's numbers (the rule read right)
    frame_right: bool | None = None  # V-IRL, at a turn: its action was a turn of the split's action space
    observation_right: bool | None = None  # V-IRL: its "current observation" was right (intersection, landmark)


def run_episodes(policy, envs, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS,
                 batch_size=BATCH_SIZE, desc="eval", progress=None) -> list[list[Attempt]]:
    """Play every env's first episode to its end; returns per env the list of its Attempts.

    Unfinished episodes are stepped together, batch_size observations per generate() call, in
    rounds: each round gives every unfinished episode one more answer, until all have ended.
    The envs are answered in the same order whatever batch_size is (a seeded sampler or the
    random stand-in gives the same episodes with any batch size).
    """
    if progress is None:  # a bar for people at a terminal, not for logs or other ranks
        progress = sys.stderr.isatty() and _is_rank0()
    obs = [env.reset()[0] for env in envs]
    attempts = [[] for _ in envs]
    active = list(range(len(envs)))
    needs_envs = getattr(policy, "needs_envs", False)
    with tqdm(total=len(envs), desc=desc, disable=not progress, leave=False) as bar:
        while active:
            still = []
            for start in range(0, len(active), batch_size):
                chunk = active[start : start + batch_size]
                extra = {"envs": [envs[i] for i in chunk]} if needs_envs else {}
                gens = policy.generate([obs[i] for i in chunk], temperature=temperature,
                                       max_new_tokens=max_new_tokens, **extra)
                assert len(gens) == len(chunk), "generate() must answer every observation"
                for i, gen in zip(chunk, gens):
                    ob, _, terminated, truncated, info = envs[i].step(gen.text)
                    attempts[i].append(Attempt(info["verdict"], terminated, truncated,
                                               bool(getattr(gen, "cut_off", False)), info.get("numbers_correct"),
                                               info.get("frame_right"), info.get("observation_right")))
                    if terminated or truncated:
                        bar.update(1)
                    else:
                        obs[i] = ob
                        still.append(i)
            active = still
    return attempts


def _outcome_shares(flat: list[Attempt]) -> dict:
    """{outcome: share of all attempts}, e.g. {"correct": 0.25, "wrong_numbers": 0.75}."""
    counts = {}
    for a in flat:
        counts[a.verdict.outcome] = counts.get(a.verdict.outcome, 0) + 1
    return {k: v / len(flat) for k, v in sorted(counts.items())} if flat else {}


def _cut_off_share(flat: list[Attempt]) -> float:
    return sum(a.cut_off for a in flat) / len(flat) if flat else 0.0


def gp_metrics(episodes: list[list[Attempt]], vision: bool) -> dict:
    """GeneralPoints metrics of one split from the attempts of each hand:
    success = hands solved within the attempts / n, with stderr = sqrt(p(1-p)/n);
    solved, n, attempts (model answers given), outcomes = share of each verifier outcome over all
    attempts, cut_off = share of answers cut at max_new_tokens;
    numbers_right = share of hands whose first answer's "number" list holds the hand's numbers
    (any order): the rule was read right, whatever the formula (ours, for the laptop experiment);
    first_attempt = hands solved by their first answer / n;
    recognition (vision only) = share of first answers whose cards were recognised correctly, i.e.
    whose verdict is not wrong_cards (the verifier checks the cards first), with its stderr: as
    the paper reports it (public scripts/gp_recog_evaluation: one attempt, no verification)."""
    n = len(episodes)
    solved = sum(1 for ep in episodes if ep and ep[-1].terminated)  # ended by a correct answer
    first = sum(1 for ep in episodes if ep and ep[0].terminated)
    flat = [a for ep in episodes for a in ep]
    p = solved / n if n else 0.0
    read = sum(1 for ep in episodes if ep and ep[0].numbers_right)  # first answers only: before any feedback
    metrics = {"n": n, "success": p, "stderr": binomial_stderr(p, n), "solved": solved,
               "first_attempt": first / n if n else 0.0, "numbers_right": read / n if n else 0.0,
               "attempts": len(flat), "outcomes": _outcome_shares(flat),
               "cut_off": _cut_off_share(flat)}
    if vision:  # the verifier checks the cards first: any other verdict means they were right
        recognised = sum(1 for ep in episodes if ep and ep[0].verdict.outcome != "wrong_cards")
        r = recognised / n if n else 0.0
        metrics.update(recognition=r, recognition_stderr=binomial_stderr(r, n))
    return metrics


def virl_metrics(episodes: list[list[Attempt]], positions: list[int]) -> dict:
    """V-IRL metrics of one split; positions[i] = number of rail positions of route i.

    Every correct verdict answers one position (the agent moves on, or stops at the destination),
    so the positions answered correctly are the correct verdicts; the positions after a failed
    one were never reached and count as wrong. A route is solved when it ends by a correct
    stop() at the destination, i.e. every position was answered within its attempts.
    Example: routes of 3 and 4 positions, the first solved, the second failed at its 2nd
    position -> step_accuracy (3 + 1) / 7, route_success 1 / 2.

    step_accuracy = rail positions answered correctly within the attempts / all rail positions;
    stderr = sqrt(p(1-p)/positions) (a binomial approximation: the steps of one route are not
    independent, so it understates the true uncertainty). route_success = routes finished with
    every position correct / n, route_stderr likewise. frame_right = share of the answers at turns
    (the start and the intersections) whose action is a turn of the split's action space, right
    direction or wrong: rule-OOD asks for left / right / slightly left / slightly right, so a
    compass word there is the ID habit. observation_right = share of all answers whose "current
    observation" is right: "intersection" exactly at an intersection, the landmark in view and no
    other of the route's (the verifier's check; with --vision the views must be read for it). The
    last two are ours, for the laptop experiment.
    """
    n = len(episodes)
    correct = [sum(1 for a in ep if a.verdict.outcome == "correct") for ep in episodes]
    total = sum(positions)
    routes_solved = sum(1 for ep in episodes if ep and ep[-1].terminated)
    flat = [a for ep in episodes for a in ep]
    turns = [a.frame_right for a in flat if a.frame_right is not None]
    seen = [a.observation_right for a in flat if a.observation_right is not None]
    p = sum(correct) / total if total else 0.0
    q = routes_solved / n if n else 0.0
    return {"n": n, "step_accuracy": p, "stderr": binomial_stderr(p, total),
            "positions": total, "positions_correct": sum(correct),
            "route_success": q, "route_stderr": binomial_stderr(q, n),
            "routes_solved": routes_solved, "attempts": len(flat),
            "outcomes": _outcome_shares(flat), "cut_off": _cut_off_share(flat),
            "frame_right": sum(turns) / len(turns) if turns else 0.0,
            "observation_right": sum(seen) / len(seen) if seen else 0.0}


def known_splits(env: str) -> tuple:
    """The splits evaluate() knows for a task: the paper's three, and for GeneralPoints also
    val-rule (ours, J/Q/K = 3/6/9: the laptop experiment tunes on it, never on ood-rule)."""
    module = ENVS[env]
    return tuple(getattr(module, "SPLIT_VARIANTS", module.SPLITS))


def parse_splits(text: str, env: str, vision: bool = False) -> tuple:
    """'id, ood-rule' -> ('id', 'ood-rule'); ValueError in one line on an unknown or empty list,
    and on ood-visual without vision: its change is in the image, so a text (L) run would log the
    ID task (GP-L's prompt shows plain ranks) or other names (V-IRL-L) under its name."""
    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in splits if s not in known_splits(env)]
    if unknown or not splits:
        problem = f"unknown split {unknown[0]!r}" if unknown else "no split given"
        raise ValueError(f"{problem} (choose from {', '.join(known_splits(env))})")
    if "ood-visual" in splits and not vision:
        raise ValueError("ood-visual is the VL variant's split (it changes the image): add --vision or leave it out")
    if len(set(splits)) < len(splits):
        raise ValueError(f"{next(s for s in splits if splits.count(s) > 1)!r} is given twice")
    return splits


@functools.lru_cache
def distinct_episodes(env: str, split: str) -> int:
    """How many different evaluation episodes a split has; asking for more would repeat them.

    V-IRL: its fixed routes (48 ID / rule-OOD, 18 visual-OOD). GeneralPoints: the hands
    generalpoints.deal can give, counted from the module itself: 4-card multisets of the split's
    suits (ranks are drawn with replacement), solvable under its rule, and holding a J, Q or K
    when the rule's face values are not the ID ones. ~17,000 ID hands, ~11,000 rule-OOD.
    """
    if env == "virl":
        return len(virl.eval_routes(split))
    gp = generalpoints
    rule, color = gp.SPLIT_VARIANTS[split]
    values, need_face = gp.card_values(rule), gp.face_values(rule) != gp.FACE_VALUES["id"]
    cards = [rank + suit for rank in gp.RANKS for suit in gp.COLORS[color]]
    return sum(1 for hand in combinations_with_replacement(cards, 4)
               if gp.solve([values[c] for c in hand]) is not None
               and (not need_face or any(c[:-1] in ("J", "Q", "K") for c in hand)))


def evaluate(policy, env="generalpoints", splits=("id", "ood-rule"), vision=False, n=None,
             attempts=None, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS,
             batch_size=BATCH_SIZE, progress=None, samples=1, sample_seed=0, image_size=None,
             held_out=False) -> dict:
    """{split: metrics} of `policy` on the fixed evaluation episodes of each split.

    policy: a policy.py policy or a stand-in (OraclePolicy / RandomPolicy). n=None -> the paper's
    episode count, and n is capped at the split's distinct_episodes (the CLI says so);
    attempts=None -> the environment's VIter budget (GP 5, V-IRL 2); temperature 0 = greedy,
    > 0 = `samples` seeded sampling passes, None = the checkpoint's own generation settings (see
    the module docstring); image_size=None -> the env module's default; held_out (GeneralPoints):
    n other fixed hands, none of them an evaluation hand (generalpoints.eval_envs). Under FSDP every rank
    must make the same generate() calls: evaluate greedily, so all ranks play in lockstep.
    """
    if env not in ENVS:
        raise ValueError(f"unknown env {env!r} (choose from {', '.join(ENVS)})")
    module = ENVS[env]
    unknown = [s for s in splits if s not in known_splits(env)]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r} (choose from {', '.join(known_splits(env))})")
    if held_out and env != "generalpoints":
        raise ValueError("held-out hands are GeneralPoints': V-IRL has its fixed routes only")
    attempts = module.MAX_ATTEMPTS if attempts is None else attempts
    other = {"held_out": True} if held_out else {}
    passes = 1 if temperature == 0 else samples
    results = {}
    for split in splits:
        cap = n if n is None else min(n, distinct_episodes(env, split))
        played, positions = [], []
        for k in range(passes):
            envs = module.eval_envs(split, n=cap, vision=vision, max_attempts=attempts, image_size=image_size, **other)
            with _seeded(None if temperature == 0 else sample_seed + k):
                played += run_episodes(policy, envs, temperature, max_new_tokens, batch_size,
                                       desc=f"{env} {split}", progress=progress)
            positions += [e.num_positions for e in envs] if env == "virl" else []
        results[split] = virl_metrics(played, positions) if env == "virl" else gp_metrics(played, vision)
        if passes > 1:
            results[split]["samples"] = passes
    return results


# The longest feedback turn each task gives: GeneralPoints' fixed words, plus (ECHO) as many tokens as
# the answer before it (its formula's prefix, one error per symbol); V-IRL's are fixed sentences.
FEEDBACK = {"generalpoints": generalpoints.FEEDBACK.format(
    "you used numbers: [13, 13, 13, 13] too many times, you didn't use numbers: [10, 10, 10, 10]."),
    "virl": virl.FEEDBACK.format(max(virl.MESSAGES.values(), key=len))}
ECHO = {"generalpoints": 1, "virl": 0}


@functools.lru_cache(maxsize=16)
def _longest_observations(env, split, vision, image_size, training):
    """Candidates for the longest first prompt of a split, as (prompt text, its image's drawing or
    None): GP the rule's prompt with four 10s (the longest ranks); V-IRL the last position of each
    route's rail with no forward point dropped (its history is longest there), the training pool's
    routes too when `training`."""
    if env == "generalpoints":
        rule, color = generalpoints.SPLIT_VARIANTS[split]
        cards = ["10" + generalpoints.COLORS[color][0]] * 4
        draw = functools.partial(generalpoints.render, cards, image_size or generalpoints.IMAGE_SIZE)
        return [(generalpoints.prompt_text(cards, rule, vision), draw if vision else None)]
    envs = virl.eval_envs(split, vision=vision, image_size=image_size)
    routes = [r for e in envs for r in e.routes] + (list(virl.make_env(split).routes) if training else [])
    out = []
    for route in routes:
        rail = virl.build_rail(route, drop_rate=0.0)
        draw = functools.partial(render_grid, rail[-1], route.city, image_size or virl.GRID_SIZE)
        out.append((virl.prompt_text(virl.instructions(route), rail, len(rail) - 1, envs[0].actions, vision),
                    draw if vision else None))
    return out


def check_context(policy, env, vision, image_size, uses) -> None:
    """Refuse in one line (RunError), before any work, an evaluation or rollout whose longest
    conversation cannot fit the model's context. uses: (splits, attempts, max_new_tokens, the flags
    that set the two, training: count the rollouts' routes too) per use. The longest conversation
    is bounded as the longest first prompt, then per failed attempt an answer of max_new_tokens and
    the longest feedback turn (FEEDBACK, ECHO), then the last answer:
        prompt + (attempts - 1) x (turn headers + feedback + answer) + answer
    (policy.generate still refuses, in one line, a conversation that outgrows it after all)."""
    for splits, attempts, new, flags, training in uses:
        attempts = ENVS[env].MAX_ATTEMPTS if attempts is None else attempts
        splits = tuple(splits.split(",")) if isinstance(splits, str) else tuple(splits)
        candidates = sorted((c for split in dict.fromkeys(splits)  # the 8 longest in characters,
                             for c in _longest_observations(env, split, vision, image_size, training)),
                            key=lambda c: -len(c[0]))[:8]
        with quiet("transformers"):  # its note on a text longer than the model: said below in one line
            text, draw = max(candidates, key=lambda c: len(policy.tokenizer(  # then the longest in tokens
                policy.chat_text([generalpoints.user_turn(c[0])]), add_special_tokens=False)["input_ids"]))
        image = draw() if draw else None
        first = [generalpoints.user_turn(text, image is not None)]
        prompt = policy.prompt_inputs([{"messages": first, "image": image}])["input_ids"].shape[1]
        failed = {"messages": first + [generalpoints.assistant_turn(""), generalpoints.user_turn(FEEDBACK[env])],
                  "image": image}
        per_attempt = policy.prompt_inputs([failed])["input_ids"].shape[1] - prompt + new * (1 + ECHO[env])
        need = prompt + (attempts - 1) * per_attempt + new
        if need > policy.context:
            raise RunError(f"{flags[0]} {new} x {attempts} attempts ({', '.join(splits)}) needs up to {need:,} "
                           f"tokens; the model holds {policy.context:,}: lower {' or '.join(flags)}")


@contextlib.contextmanager
def _seeded(seed):
    """Sampling with torch's RNG seeded to `seed` and restored afterwards; nothing for None."""
    if seed is None:
        yield
        return
    import torch  # here: the stand-ins and the CLI's argument checks need no torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):  # the CPU's stream and the current GPU's
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def format_table(results: dict, env: str) -> str:
    """One row per split: the headline metric +- stderr and the counts behind it."""
    if env == "virl":
        head = (f"{'split':<11} {'routes':>6} {'step acc %':>14} {'route succ %':>14}"
                f" {'positions':>10}")
        rows = [f"{s:<11} {m['n']:>6} {100 * m['step_accuracy']:>7.1f} +- {100 * m['stderr']:<4.1f}"
                f" {100 * m['route_success']:>7.1f} +- {100 * m['route_stderr']:<4.1f}"
                f" {m['positions_correct']:>4}/{m['positions']:<5}"
                for s, m in results.items()]
    else:
        head = f"{'split':<11} {'hands':>6} {'success %':>14} {'solved':>7}"
        if any("recognition" in m for m in results.values()):
            head += f" {'recognition %':>14}"
        rows = []
        for s, m in results.items():
            row = (f"{s:<11} {m['n']:>6} {100 * m['success']:>7.1f} +- {100 * m['stderr']:<4.1f}"
                   f" {m['solved']:>7}")
            if "recognition" in m:
                row += f" {100 * m['recognition']:>7.1f} +- {100 * m['recognition_stderr']:<4.1f}"
            rows.append(row)
    outcome_rows = [f"  {s}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in m["outcomes"].items())
                    for s, m in results.items()]
    return "\n".join([head, *rows, "outcome shares over attempts:", *outcome_rows])


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--env", required=True, choices=sorted(ENVS), help="the task (paper: both)")
    a("--vision", action="store_true", help="the VL variant: cards / street views as an image (paper: both)")
    a("--model", required=True,
      help="'tiny' / 'tiny-large' / 'tiny-vl' (random init), a policy folder, 'oracle', 'random'")
    a("--splits", default="id,ood-rule",
      help="comma-separated: id, ood-rule, ood-visual (with --vision); GP also val-rule (J/Q/K = 3/6/9)")
    a("--episodes", type=COUNT, default=None,
      help="episodes per split, at most the split's distinct ones (paper: 234 hands / 48 or 18 routes)")
    a("--attempts", type=ATTEMPTS, help="attempts per hand / position, VIter, at most 100 (paper: GP 5, V-IRL 2)")
    a("--temperature", type=number(at_least=0), default=0.0, help="sampling temperature, 0 = greedy")
    a("--samples", type=SAMPLES, default=1, help="seeded sampling passes (--seed + k) when --temperature > 0")
    a("--max-new-tokens", type=COUNT, default=None,
      help=f"longest answer; a longer one is cut off and judged as is (default {MAX_NEW_TOKENS}; paper: 256)")
    a("--preset", choices=["cpu", "paper"], default="cpu",
      help="paper: as the public evaluator, the checkpoint's generation_config, 256 tokens, public image sizes")
    a("--batch-size", type=COUNT, default=BATCH_SIZE, help="observations per generate() call")
    a("--seed", type=SEED, default=0, help="seed of the model's init ('tiny'), sampling and the random stand-in")
    a("--held-out", action="store_true", help="GeneralPoints: other fixed hands, none of the 234 evaluation hands")
    a("--out", default=None, help="write {split: metrics} as JSON to this file")
    args = parser.parse_args(argv)
    if args.held_out and args.env != "generalpoints":
        parser.error("--held-out is for GeneralPoints (V-IRL has its fixed routes only)")
    try:
        splits = parse_splits(args.splits, args.env, args.vision)
    except ValueError as err:
        parser.error(f"--splits: {err}")
    paper = args.preset == "paper"
    if args.max_new_tokens is None:
        args.max_new_tokens = PAPER_MAX_NEW_TOKENS if paper else MAX_NEW_TOKENS
    if args.out and (why := out_problem(args.out, folder=False)):  # before hours of evaluation
        parser.error(f"--out {why}")
    for split in splits:
        if args.episodes and args.episodes > (most := distinct_episodes(args.env, split)):
            print(f"note: {split} has {most} distinct {'routes' if args.env == 'virl' else 'hands'}; "
                  f"evaluating those, not {args.episodes}", file=sys.stderr)

    if args.model in STAND_INS:
        policy = stand_in(args.model, args.seed)
    else:
        if not args.model.startswith("tiny") and not Path(args.model).is_dir():
            parser.error(f"model folder {args.model!r} not found")
        import torch  # imported here: torch costs seconds, the stand-ins need none

        from policy import load_policy

        try:
            policy = load_policy(args.model, vision=args.vision, seed=args.seed)
        except ValueError as err:  # policy.py says why in one line
            sys.exit(f"error: cannot load {args.model!r}: {err}")
        try:  # before hours of evaluation: the longest conversation must fit the model
            check_context(policy, args.env, args.vision, paper_image_size(args.env) if paper else None,
                          [(splits, args.attempts, args.max_new_tokens, ("--max-new-tokens", "--attempts"), False)])
        except RunError as err:
            sys.exit(f"error: {err}")
        torch.manual_seed(args.seed)  # sampling (--temperature > 0) is seeded, not bit-exact on GPU
    random.seed(args.seed)

    results = evaluate(policy, env=args.env, splits=splits, vision=args.vision, n=args.episodes,
                       attempts=args.attempts, temperature=None if paper else args.temperature,
                       max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                       samples=args.samples, sample_seed=args.seed,
                       image_size=paper_image_size(args.env) if paper else None, held_out=args.held_out)
    print(format_table(results, args.env))
    if args.out:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(args.out, json.dumps(results, indent=2) + "\n")  # a full disk keeps the old file
        except OSError as err:  # e.g. a full disk; the table above has the results
            sys.exit(f"error: --out {args.out}: {err.strerror or err}")


if __name__ == "__main__":
    cli.main(main, lambda argv: argv)  # a Ctrl-C: one line, exit status 130
