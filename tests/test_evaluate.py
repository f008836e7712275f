"""evaluate.py: the oracle scores 100%, the random floor scores what it must, fixed episodes,
seeds, standard errors, the batching loop, the CLI and one short run of the tiny policy."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import evaluate  # noqa: E402
from evaluate import Attempt, evaluate as run_eval  # noqa: E402
from generalpoints import Verdict  # noqa: E402

ALL = ("id", "ood-rule", "ood-visual")


def verdict(outcome):
    return Verdict(outcome, 0.0, "")


# ---------------------------------------------------------------------------------------------
# oracle and random stand-ins
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ["generalpoints", "virl"])
@pytest.mark.parametrize("vision", [False, True])
def test_oracle_scores_100(env, vision):
    res = run_eval(evaluate.OraclePolicy(), env, ALL, vision=vision, n=6, progress=False)
    assert list(res) == list(ALL)
    for m in res.values():
        assert m["n"] == 6 and m["stderr"] == 0.0 and m["outcomes"] == {"correct": 1.0}
        if env == "virl":
            assert m["step_accuracy"] == 1.0 and m["route_success"] == 1.0
            assert m["positions_correct"] == m["positions"] == m["attempts"]
        else:
            assert m["success"] == 1.0 and m["solved"] == 6 and m["attempts"] == 6
            assert ("recognition" in m) == vision and m.get("recognition", 1.0) == 1.0


@pytest.mark.parametrize("vision", [False, True])
def test_random_gp_never_solves_and_uses_every_attempt(vision):
    res = run_eval(evaluate.RandomPolicy(0), "generalpoints", ALL, vision=vision, n=40,
                   progress=False)
    for m in res.values():
        assert m["success"] == 0.0 and m["solved"] == 0
        assert m["attempts"] == 40 * 5  # every failed hand spends all 5 attempts (VIter)
        assert math.isclose(sum(m["outcomes"].values()), 1.0)
        if vision:  # random cards are never the cards shown
            assert m["recognition"] == 0.0 and m["outcomes"] == {"wrong_cards": 1.0}
        else:  # random numbers are (almost) never the hand's numbers
            assert m["outcomes"]["wrong_numbers"] > 0.9


def test_random_virl_matches_its_expected_step_accuracy():
    """Each random attempt is right with probability 1/K (K actions), so a position is passed
    with q = 1 - (1 - 1/K)^2 and a route of L positions gets C = min(Geometric, L) right:
    P(C >= k) = q^k, E[C] = sum q^k, E[C^2] = sum (2k - 1) q^k."""
    import virl

    res = run_eval(evaluate.RandomPolicy(0), "virl", ALL, progress=False)
    for split, m in res.items():
        k = len(virl.action_space(relative=split == "ood-rule"))
        q = 1 - (1 - 1 / k) ** 2
        lengths = [e.reset()[1]["n_positions"] for e in virl.eval_envs(split)]
        mean = sum(sum(q ** j for j in range(1, L + 1)) for L in lengths)
        second = sum(sum((2 * j - 1) * q ** j for j in range(1, L + 1)) for L in lengths)
        sd = math.sqrt(second - sum(sum(q ** j for j in range(1, L + 1)) ** 2 for L in lengths))
        assert m["positions"] == sum(lengths)
        assert abs(m["positions_correct"] - mean) < 4 * sd, (split, m["positions_correct"], mean)
        assert m["route_success"] == 0.0  # q^L with L ~ 18: never
        assert m["step_accuracy"] < 0.08


# ---------------------------------------------------------------------------------------------
# fixed episodes, seeds, batching
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ["generalpoints", "virl"])
def test_same_episodes_and_seeds_respected(env):
    module = evaluate.ENVS[env]
    first = [e.reset()[0]["messages"] for e in module.eval_envs("ood-rule", n=5)]
    again = [e.reset()[0]["messages"] for e in module.eval_envs("ood-rule", n=5)]
    assert first == again  # the fixed evaluation episodes

    a = run_eval(evaluate.RandomPolicy(3), env, ("id",), n=12, progress=False)
    b = run_eval(evaluate.RandomPolicy(3), env, ("id",), n=12, batch_size=5, progress=False)
    assert a == b  # same seed: same answers, whatever the batch size

    answers = []
    for seed in (3, 3, 4):
        envs = module.eval_envs("id", n=3)
        for e in envs:
            e.reset()
        answers.append([g.text for g in evaluate.RandomPolicy(seed).generate([None] * 3,
                                                                              envs=envs)])
    assert answers[0] == answers[1] != answers[2]


class ScriptedPolicy:
    """Right on attempt `right_at` of even-numbered episodes, wrong everywhere else."""

    needs_envs = True

    def __init__(self, envs, right_at):
        self.index = {id(e): i for i, e in enumerate(envs)}
        self.right_at, self.calls, self.seen = right_at, {}, []

    def generate(self, obs_list, temperature=0.0, max_new_tokens=None, envs=None):
        self.seen.append(len(obs_list))
        out = []
        for env in envs:
            k = self.calls[id(env)] = self.calls.get(id(env), 0) + 1
            right = self.index[id(env)] % 2 == 0 and k == self.right_at
            out.append(evaluate.StandInGeneration(env.oracle_response() if right else "no",
                                                  cut_off=not right))
        return out


def test_batched_loop_counts_attempts_and_chunks():
    import generalpoints

    envs = generalpoints.eval_envs("id", n=10)
    policy = ScriptedPolicy(envs, right_at=3)
    episodes = evaluate.run_episodes(policy, envs, batch_size=4, progress=False)
    # round 1-3: 10 unfinished episodes in chunks of 4, 4, 2; then the 5 odd ones, twice
    assert policy.seen == [4, 4, 2] * 3 + [4, 1] * 2
    m = evaluate.gp_metrics(episodes, vision=False)
    assert m["success"] == 0.5 and m["solved"] == 5 and m["attempts"] == 5 * 3 + 5 * 5
    assert m["outcomes"] == {"correct": 5 / 40, "illegal_formula": 35 / 40}
    assert m["cut_off"] == 35 / 40
    assert all(ep[-1].truncated != ep[-1].terminated for ep in episodes)


# ---------------------------------------------------------------------------------------------
# metrics on known cases
# ---------------------------------------------------------------------------------------------
def test_stderr_known_cases():
    assert evaluate.binomial_stderr(0.5, 100) == pytest.approx(0.05)
    assert evaluate.binomial_stderr(0.0, 10) == 0.0 and evaluate.binomial_stderr(0.3, 0) == 0.0
    ok, bad = Attempt(verdict("correct"), True, False, False), Attempt(verdict("wrong_cards"),
                                                                        False, False, False)
    last_bad = Attempt(verdict("wrong_value"), False, True, False)
    m = evaluate.gp_metrics([[ok], [bad, ok], [bad, last_bad], [last_bad]], vision=True)
    assert m["success"] == 0.5 and m["stderr"] == pytest.approx(math.sqrt(0.25 / 4))
    assert m["first_attempt"] == 0.25
    # recognition as the paper reports it: over first answers (hands 2 and 3 misread the cards)
    assert m["recognition"] == pytest.approx(2 / 4)
    assert m["recognition_stderr"] == pytest.approx(math.sqrt(0.5 * 0.5 / 4))
    assert m["outcomes"] == pytest.approx({"correct": 2 / 6, "wrong_cards": 2 / 6,
                                           "wrong_value": 2 / 6})


def test_virl_metrics_known_case():
    right = Attempt(verdict("correct"), False, False, False)
    stop = Attempt(verdict("correct"), True, False, False)
    wrong = Attempt(verdict("wrong_action"), False, False, False)
    out = Attempt(verdict("wrong_observation"), False, True, False)
    # a 3-position route solved (one revision), a 4-position route failed at its 2nd position
    m = evaluate.virl_metrics([[right, wrong, right, stop], [right, wrong, out]], [3, 4])
    assert m["step_accuracy"] == pytest.approx(4 / 7) and m["positions_correct"] == 4
    assert m["stderr"] == pytest.approx(math.sqrt(4 / 7 * 3 / 7 / 7))
    assert m["route_success"] == 0.5 and m["route_stderr"] == pytest.approx(math.sqrt(0.25 / 2))
    assert m["attempts"] == 7 and m["outcomes"]["correct"] == pytest.approx(4 / 7)


def test_unknown_split_or_env_raises():
    with pytest.raises(ValueError, match="unknown split"):
        run_eval(evaluate.OraclePolicy(), "generalpoints", ("ood-colour",), n=1)
    with pytest.raises(ValueError, match="unknown env"):
        run_eval(evaluate.OraclePolicy(), "chess", ("id",), n=1)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("env,keys", [
    ("generalpoints", {"n", "stderr", "success", "solved", "recognition"}),
    ("virl", {"n", "stderr", "step_accuracy", "route_success", "route_stderr", "positions"})])
def test_cli_json_output(tmp_path, env, keys):
    out = tmp_path / "sub" / "eval.json"
    res = cli("--env", env, "--vision", "--model", "oracle", "--splits", "id,ood-visual",
              "--episodes", "3", "--out", out)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert list(data) == ["id", "ood-visual"]
    for m in data.values():
        assert keys <= m.keys() and m["n"] == 3
    assert "100.0" in res.stdout and "ood-visual" in res.stdout


def test_cli_held_out_hands(tmp_path):
    """--held-out plays other fixed hands than the evaluation's (generalpoints.eval_envs)."""
    out = tmp_path / "held.json"
    res = cli("--env", "generalpoints", "--model", "oracle", "--splits", "id", "--episodes", "5", "--held-out",
              "--out", out)
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["id"]["success"] == 1.0 and json.loads(out.read_text())["id"]["n"] == 5


@pytest.mark.parametrize("args", [  # flag errors, refused by cli.ArgumentParser in one line (exit 2)
    ["--env", "generalpoints", "--model", "oracle", "--splits", "id,ood-colour"],
    ["--env", "virl", "--model", "no/such/folder"],
    ["--env", "virl", "--model", "oracle", "--episodes", "0"],
    ["--env", "chess", "--model", "oracle"],
    ["--env", "virl", "--model", "oracle", "--held-out"],  # V-IRL has its fixed routes only
])
def test_cli_bad_inputs(args):
    res = cli(*args)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "error:" in res.stderr


# ---------------------------------------------------------------------------------------------
# the tiny policy: one short real evaluation
# ---------------------------------------------------------------------------------------------
def test_tiny_policy_evaluates():
    """A real (random-init) policy through the whole loop: 3 episodes, 2 chunks per round."""
    from policy import load_policy

    policy = load_policy("tiny", seed=0)
    settings = dict(splits=("ood-rule",), n=3, attempts=2, max_new_tokens=8, batch_size=2,
                    progress=False)
    for env, key in [("generalpoints", "success"), ("virl", "step_accuracy")]:
        res = run_eval(policy, env, **settings)
        m = res["ood-rule"]
        assert m["n"] == 3 and 0.0 <= m[key] <= 1.0 and m["stderr"] >= 0.0
        assert 3 <= m["attempts"] and math.isclose(sum(m["outcomes"].values()), 1.0)
        assert m["cut_off"] > 0.0  # 8 tokens cannot hold a JSON answer
    assert run_eval(policy, "virl", **settings) == res  # greedy: deterministic


def test_sampled_evaluation_is_seeded_pooled_and_leaves_the_rng_alone():
    """temperature > 0: `samples` passes over the same episodes, pass k seeded with
    sample_seed + k; the metrics pool them (n = episodes x samples), the same call gives the
    same numbers, and torch's own random stream is where it was (a training run's stays put)."""
    import torch

    from policy import load_policy

    policy = load_policy("tiny", seed=0)
    settings = dict(splits=("id",), n=2, attempts=1, max_new_tokens=6, progress=False)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    res = run_eval(policy, "generalpoints", temperature=1.0, samples=3, sample_seed=5, **settings)
    assert torch.equal(torch.random.get_rng_state(), before)
    m = res["id"]
    assert m["n"] == 6 and m["samples"] == 3 and m["attempts"] == 6
    assert run_eval(policy, "generalpoints", temperature=1.0, samples=3, sample_seed=5, **settings) == res
    greedy = run_eval(policy, "generalpoints", temperature=0.0, samples=3, **settings)["id"]
    assert greedy["n"] == 2 and "samples" not in greedy  # greedy needs one pass
    # None: the checkpoint's own generation_config (the public evaluator's way); the tiny
    # model's has no sampling fields, so it decodes greedily
    assert run_eval(policy, "generalpoints", temperature=None, samples=1, **settings)["id"] == greedy
