"""The laptop experiment (issue 9): the rule mixture, the val-rule split, the statistics, and the
whole pipeline in its seconds-long smoke mode (experiments/headline.py --smoke)."""
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import evaluate
import cards as cards_module
import generalpoints as gp
import policy
import streetview
import virl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import pretrain  # noqa: E402  (experiments/pretrain.py: the stand-in for pretraining)


def test_any_face_values_give_the_papers_sentences_and_values():
    assert gp.rule_sentence("id") == gp.rule_sentence((10, 10, 10)) == "'J', 'Q', and 'K' count as '10'"
    assert (gp.rule_sentence("ood") == gp.rule_sentence((11, 12, 13))
            == "'J', 'Q', and 'K' count as '11', '12', and '13' respectively")
    assert gp.rule_sentence((3, 7, 1)) == "'J', 'Q', and 'K' count as '3', '7', and '1' respectively"
    assert [gp.card_value(c, (3, 7, 1)) for c in ("JS", "QC", "KS", "9C", "AS")] == [3, 7, 1, 9, 1]
    assert gp.card_values("ood")["QS"] == 12
    for bad in ("odd", (1, 2), (0, 5, 5), (5, 5, 14), (5.0, 5, 5)):
        with pytest.raises(ValueError):
            gp.face_values(bad)
    with pytest.raises(ValueError):
        gp.GeneralPointsEnv(rule=(1, 2, 3, 4))


def test_a_custom_rule_env_deals_face_cards_and_verifies_under_its_values():
    env = gp.GeneralPointsEnv(rule=(2, 4, 8), seed=1)
    for _ in range(50):
        _, info = env.reset()
        assert any(c[:-1] in "JQK" for c in info["cards"])  # the rule matters on every hand
        assert gp.prompt_text(info["cards"], (2, 4, 8)) in env.messages[0]["content"][-1]["text"]
        _, reward, terminated, _, _ = env.step(env.oracle_response())
        assert terminated and reward == gp.REWARDS["correct"]


def test_val_rule_split_is_its_own_fixed_set_of_hands():
    envs = gp.eval_envs("val-rule", n=20)
    hands = [e.reset()[1] for e in envs]
    assert all(gp.face_values(h["rule"]) == (3, 6, 9) and any(c[:-1] in "JQK" for c in h["cards"]) for h in hands)
    assert [h["cards"] for h in hands] == [e.reset()[1]["cards"] for e in gp.eval_envs("val-rule", n=20)]
    assert evaluate.parse_splits("id, val-rule", "generalpoints") == ("id", "val-rule")
    for bad in ("val-rule", ""):
        with pytest.raises(ValueError, match="choose from"):
            evaluate.parse_splits(bad, "virl")


def test_mixture_holds_out_the_test_and_tuning_rules_and_revises():
    examples = pretrain.gp_mixture(400, seed=3)
    revised = 0
    for ex in examples:
        prompt = ex["messages"][0]["content"][-1]["text"]
        assert "'J', 'Q', and 'K' count as '11', '12', and '13' respectively" not in prompt
        assert gp.rule_sentence("val") not in prompt
        cards = json.loads(ex["messages"][-1]["content"][-1]["text"])["cards"]
        roles = [m["role"] for m in ex["messages"]]
        assert roles[-1] == "assistant" and roles == ["user", "assistant"] * (len(roles) // 2)
        wrong = len(roles) // 2 - 1
        assert 0 <= wrong <= gp.MAX_ATTEMPTS - 1
        revised += wrong > 0
        for turn in ex["messages"][2:-1:2]:  # the feedback turns
            assert turn["content"][-1]["text"].startswith("You failed this trial because")
        assert len(cards) == 4
    assert 0.4 < revised / len(examples) < 0.6  # half the conversations revise
    # the target answer is right under the hand's own rule (read back from the prompt's sentence)
    for ex in examples[:100]:
        prompt = ex["messages"][0]["content"][-1]["text"]
        rule = next(r for r in [(j, q, k) for j in range(1, 14) for q in range(1, 14) for k in range(1, 14)]
                    if f"where {gp.rule_sentence(r)}.,\n" in prompt)
        cards = [rank + "S" for rank in json.loads(ex["messages"][-1]["content"][-1]["text"])["cards"]]
        assert gp.verify(ex["messages"][-1]["content"][-1]["text"], cards, rule).outcome == "correct"
        for answer in ex["messages"][1:-1:2]:  # every earlier answer was wrong
            assert gp.verify(answer["content"][-1]["text"], cards, rule).outcome != "correct"
    assert [e["messages"] for e in pretrain.gp_mixture(5, seed=3)] == [e["messages"] for e in examples[:5]]


def test_welch_t_test_matches_known_values():
    spec = importlib.util.spec_from_file_location("headline", ROOT / "experiments" / "headline.py")
    headline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headline)
    # the t distribution's two-sided 5% points: df 1 -> 12.706, df 4 -> 2.776, df 10: t=2 -> p 0.0734
    assert headline._betainc(0.5, 0.5, 1 / (1 + 12.7062 ** 2)) == pytest.approx(0.05, abs=1e-5)
    assert headline._betainc(2, 0.5, 4 / (4 + 2.776445 ** 2)) == pytest.approx(0.05, abs=1e-6)
    assert headline._betainc(5, 0.5, 10 / 14) == pytest.approx(0.07339, abs=1e-4)
    t, df, p = headline.welch_t_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert t == 0 and p == pytest.approx(1.0)
    t, df, p = headline.welch_t_test([10.0, 11.0, 12.0], [0.0, 1.0, 2.0])  # equal variances: df = 4
    assert t == pytest.approx(10 / (2 / 3) ** 0.5) and df == pytest.approx(4.0) and p < 0.001
    assert headline.welch_t_test([1.0, 1.0], [2.0, 2.0])[2] == 0.0
    with pytest.raises(ValueError):
        headline.welch_t_test([1.0], [1.0, 2.0])


SHIPPED = [t for t in ("gp-l", "virl-l", "gp-vl", "virl-vl") if (ROOT / "inits" / f"fig1-{t}" / "card.json").is_file()]


def test_the_four_figure1_inits_ship():
    assert SHIPPED == ["gp-l", "virl-l", "gp-vl", "virl-vl"]


def test_smoke_pipeline_runs_both_arms_of_every_setting_from_its_init(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "experiments/headline.py", "--task", "all", "--smoke", "--root", str(tmp_path)]
    out = subprocess.run(cmd, cwd=ROOT, env=env, timeout=600, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    metrics = {"gp-l": ("success", "numbers_right", "ood-rule"), "virl-l": ("step_accuracy", "frame_right", "ood-rule"),
               "gp-vl": ("success", "recognition", "ood-visual"), "virl-vl": ("step_accuracy", "observation_right",
                                                                             "ood-visual")}
    for task in SHIPPED:
        metric, mechanism, ood = metrics[task]
        root = tmp_path / task
        result = json.loads((root / "results.json").read_text())
        assert result["metric"] == metric and result["mechanism"] == mechanism and result["ood"] == ood
        assert set(result["arms"]) == {"SFT", "RL"} and {"id", ood} <= set(result["init"])
        sft, rl = result["arms"]["SFT"], result["arms"]["RL"]
        assert 0.75 < sft["gflops"][0] / rl["gflops"][0] < 1.33  # matched training compute
        assert set(sft["mechanism"]) == set(result["init"])
        gain = result["matched_gain"]
        assert set(gain["arms"]) == {"SFT", "RL"} and math.isfinite(gain["target"])
        assert all(len(a["change"][ood]) == 1 for a in gain["arms"].values())
        assert (root / "mechanism.png").stat().st_size > 1000 and (root / "curves.png").stat().st_size > 1000
        init = str(ROOT / "inits" / f"fig1-{task}")  # both arms start from the released init
        assert json.loads((root / "rl-0" / "config.json").read_text())["init"] == init
        sft_config = json.loads((root / "sft-0" / "config.json").read_text())
        assert sft_config["model"] == init and sft_config["threads"] == 1
        assert "At matched ID gain" in (root / "results.md").read_text()
    for task in set(metrics) - set(SHIPPED):
        assert f"{task}: inits/fig1-{task} is not built, skipped" in out.stdout
    assert "| RL (1 seeds) |" in out.stdout and "Welch" not in out.stdout  # 1 seed: no test
    assert (tmp_path / "figure1.png").stat().st_size > 1000
    again = subprocess.run(cmd, cwd=ROOT, env=env, timeout=200, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("done before, skipped") == 2 * len(SHIPPED)


class FakeRun:
    """A run's greedy evaluations, as plots.Run holds them: [(GFLOPs, {split: success})]."""
    metric = "success"

    def __init__(self, name, points):
        self.name = name
        self.evals = [{"flops": f * 1e9, "eval": {s: {"success": v / 100, "numbers_right": 0.5} for s, v in e.items()}}
                      for f, e in points]

    def series(self, split, key):
        return [e["flops"] / 1e9 for e in self.evals], [100 * e["eval"][split][key] for e in self.evals], []


def test_matched_gain_takes_each_run_where_its_id_gain_is_closest_to_the_smaller_arms_final_gain():
    spec = importlib.util.spec_from_file_location("headline", ROOT / "experiments" / "headline.py")
    headline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headline)
    start = {"id": 50.0, "ood-rule": 10.0}
    sft = [FakeRun(f"sft-{i}", [(0, {"id": 50, "ood-rule": 10}), (1, {"id": 58 + i, "ood-rule": 6}),
                                (5, {"id": 80, "ood-rule": 2})]) for i in range(2)]
    rl = [FakeRun(f"rl-{i}", [(0, {"id": 50, "ood-rule": 10}), (1, {"id": 52, "ood-rule": 11}),
                              (5, {"id": 58 + 2 * i, "ood-rule": 12 + i})]) for i in range(2)]
    out = headline.matched_gain({"SFT": sft, "RL": rl}, start, ["id", "ood-rule"], "numbers_right")
    assert out["target"] == pytest.approx(9.0)  # RL's mean final gain (8, 10), below SFT's 30
    approx = pytest.approx
    assert out["arms"]["SFT"]["change"]["id"] == approx([8.0, 9.0])  # SFT's first evaluation, not its last
    assert out["arms"]["SFT"]["change"]["ood-rule"] == approx([-4.0, -4.0]) and out["arms"]["SFT"]["gflops"] == [1, 1]
    assert out["arms"]["RL"]["change"]["ood-rule"] == approx([2.0, 3.0]) and out["arms"]["RL"]["gflops"] == [5, 5]
    assert out["arms"]["RL"]["mechanism"]["id"] == approx([50.0, 50.0])
    assert out["test"]["ood-rule"]["p"] < 0.05


def test_both_arms_evaluate_at_the_same_compute_fractions():
    """eval_points (the SFT arm's evaluations after the start) is the RL arm's updates / eval-every,
    so both arms are evaluated at the same fractions of their (matched) compute."""
    spec = importlib.util.spec_from_file_location("headline", ROOT / "experiments" / "headline.py")
    headline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headline)
    for name, task in headline.TASKS.items():
        rl = task["full"]["rl"]
        updates, every = (int(rl[rl.index(flag) + 1]) for flag in ("--updates", "--eval-every"))
        assert updates % every == 0 and updates // every == task["full"]["eval_points"], name


def test_numbers_right_measures_whether_the_first_answer_follows_the_rule():
    assert gp.claimed_numbers('{"cards": ["QS"], "number": [1, 12, 3, 4], "formula": "x"}') == [1, 12, 3, 4]
    assert gp.claimed_numbers("number: [2,'3', 4]") == [2, 3, 4]
    for bad in ("no numbers here", '"number": [1, x]', '"number": []', '"number": [١]'):
        assert gp.claimed_numbers(bad) is None
    oracle = evaluate.evaluate(evaluate.OraclePolicy(), splits=("ood-rule",), n=8)["ood-rule"]
    assert oracle["numbers_right"] == 1.0
    env = gp.GeneralPointsEnv(rule="ood", seed=0)
    _, info = env.reset()
    as_if_id = gp.answer_text(info["cards"], "id")  # the ID habit: J/Q/K read as 10
    assert not env.step(as_if_id)[4]["numbers_correct"]


def test_virl_mixture_never_shows_the_relative_action_space_in_a_route():
    examples = pretrain.virl_mixture(600, seed=2)
    relative_list = str(list(virl.TURNS))  # the rule-OOD split's [Action space] list
    vocabularies, knowledge, relative_answers = set(), 0, set()
    for ex in examples:
        prompt, answer = (m["content"][-1]["text"] for m in ex["messages"])
        assert ex["image"] is None
        if "[Action space]" not in prompt:  # a world-knowledge pair, outside any route
            knowledge += 1
            if answer.startswith("{"):
                relative_answers.add(json.loads(answer)["action"])
            continue
        assert relative_list not in prompt
        action = json.loads(answer)["action"]
        assert action not in {f"turn_direction({w})" for w in virl.TURNS}
        assert not any(f"turn_direction({w})" in prompt for w in virl.TURNS)  # nor in the history
        for name, words in pretrain.VOCABULARIES.items():
            if str(list(words.values())) in prompt:
                vocabularies.add(name)
                assert action in ("forward()", "stop()") or action[15:-1] in words.values()
    assert vocabularies == set(pretrain.VOCABULARIES) and 60 < knowledge < 180
    assert relative_answers >= {f"turn_direction({w})" for w in virl.TURNS}  # the turns' meaning, taught
    assert [e["messages"] for e in pretrain.virl_mixture(5, seed=2)] == [e["messages"] for e in examples[:5]]
    # the compass vocabulary is the ID form, word for word
    route = virl.route_pool("train")[0]
    rail = virl.build_rail(route)
    prompt = virl.prompt_text(virl.instructions(route), rail, 3, "absolute")
    assert pretrain.in_vocabulary(prompt, "compass") == prompt
    turn = next(p for p in rail if p.action.startswith("turn_direction("))
    nautical = pretrain.in_vocabulary(virl.answer_text(turn, "relative"), "nautical")
    assert json.loads(nautical)["action"] == turn.relative.replace("left", "port").replace("right", "starboard")


def test_virl_stand_in_tokenizer_has_no_token_only_the_ood_split_uses():
    mixture = [m["content"][-1]["text"] for e in pretrain.virl_mixture(300, seed=5) for m in e["messages"]]
    unseen = {}
    tokenizers = {"default": policy.build_tokenizer(), "held out": policy.build_tokenizer(pretrain.virl_corpus())}
    for name, tok in tokenizers.items():
        seen = {i for text in mixture for i in tok(text)["input_ids"]}
        unseen[name] = set()
        for env in virl.eval_envs("ood-rule", n=6):  # the rule-OOD prompts and answers
            env.reset()
            for pos, here in enumerate(env.rail):
                text = virl.prompt_text(env.sentences, env.rail, pos, "relative") + virl.answer_text(here, "relative")
                unseen[name] |= {tok.decode([i]) for i in tok(text)["input_ids"] if i not in seen}
    # the default tokenizer fuses relative actions into tokens nothing before evaluation trains
    assert any("turn_direction(left)" in t or "slightly left" in t for t in unseen["default"])
    assert not any(w in t for t in unseen["held out"] for w in ("left", "right", "turn_direction"))


def test_gp_vl_mixture_draws_cards_in_many_inks_never_red():
    examples = pretrain.gp_mixture(40, vision=True, seed=4, inks=True)
    inks, reading = set(), 0
    for ex in examples:
        answer = json.loads(ex["messages"][-1]["content"][-1]["text"])
        if isinstance(answer, list):  # reading practice: READ_PROMPT -> the ranks alone
            assert ex["messages"][0]["content"][-1]["text"] == pretrain.READ_PROMPT and len(ex["messages"]) == 2
            reading += 1
        cards = answer if isinstance(answer, list) else answer["cards"]
        assert len(cards) == 4 and all(c in gp.RANKS for c in cards)  # recognised by rank, as the paper's targets
        pixels = set(ex["image"].getdata())
        assert not any(r > 150 and g < 80 and b < 80 for r, g, b in pixels)  # nothing red on the table
        inks |= {ink for ink in cards_module.INKS.values() if ink in pixels}
    assert len(inks) >= 6 and 4 <= reading <= 20  # about a quarter of the examples
    red = gp.eval_envs("ood-visual", n=1, vision=True)[0].reset()[0]["image"]
    assert any(r > 150 and g < 80 and b < 80 for r, g, b in red.getdata())  # the OOD split is red


def test_gp_vl_inks_flag_draws_only_the_inks_named_and_refuses_bad_ones(tmp_path, capsys):
    args = pretrain.parse_args(["--env", "generalpoints", "--vision", "--model", "tiny-vl", "--inks", "black,navy",
                                "--out", str(tmp_path / "run")])
    examples, _ = pretrain.stand_in(args)
    drawn = set()
    for ex in examples(20, seed=1):
        pixels = set(ex["image"].getdata())
        drawn |= {name for name, ink in cards_module.INKS.items() if ink in pixels}
    assert drawn - {"grey"} == {"black", "navy"} and args.inks == ("black", "navy")  # grey: black's anti-aliased edges
    own = pretrain.parse_args(["--env", "generalpoints", "--vision", "--model", "tiny-vl", "--inks", "navy,#464646",
                               "--out", str(tmp_path / "own")])
    pixels = set().union(*(set(ex["image"].getdata()) for ex in pretrain.stand_in(own)[0](20, seed=1)))
    assert (70, 70, 70) in pixels and cards_module.INKS["navy"] in pixels and cards_module.INKS["black"] not in pixels
    default = pretrain.parse_args(["--env", "generalpoints", "--vision", "--out", str(tmp_path / "d")])
    assert not hasattr(default, "inks")  # config.json of the runs before the flag: unchanged
    for bad in (["--vision", "--inks", "red"], ["--vision", "--inks", ","], ["--inks", "black"],
                ["--vision", "--inks", "black,#cc1010"], ["--vision", "--inks", "#12345"]):  # a red; not a colour
        with pytest.raises(SystemExit) as exit_:
            pretrain.parse_args(["--env", "generalpoints", *bad, "--out", str(tmp_path / "x")])
        assert exit_.value.code == 2
    assert "inks" in capsys.readouterr().err


def test_virl_vl_stand_in_draws_id_routes_in_the_training_style_or_a_look(monkeypatch):
    looks, drawn = streetview.LOOKS, []  # ID routes and answers, drawn in the training style or a look
    real = pretrain.render_grid
    monkeypatch.setattr(pretrain, "render_grid", lambda pos, city, size: drawn.append(city) or real(pos, city, size))
    examples = pretrain.virl_looks(200, seed=1, image_size=224)
    assert len(examples) == 200 and all(e["image"].size == (224, 224) for e in examples)
    assert set(drawn) <= {"train", *looks} and len(set(drawn)) >= 20 and 2 <= drawn.count("train") <= 25
    for e in examples[:20]:
        assert "[Observation format]" in e["messages"][0]["content"][-1]["text"]  # the VL prompt, ID actions
        assert json.loads(e["messages"][1]["content"][0]["text"])["action"] in virl.action_space(relative=False)
    monkeypatch.undo()
    assert pretrain.virl_looks(3, seed=1)[0]["image"].tobytes() == pretrain.virl_looks(3, seed=1)[0]["image"].tobytes()


def test_virl_vl_looks_flag_keeps_the_first_looks_only(monkeypatch, tmp_path, capsys):
    drawn, real = [], pretrain.render_grid
    monkeypatch.setattr(pretrain, "render_grid", lambda pos, city, size: drawn.append(city) or real(pos, city, size))
    args = pretrain.parse_args(["--env", "virl", "--vision", "--model", "tiny-vl", "--looks", "2",
                                "--out", str(tmp_path / "run")])
    pretrain.stand_in(args)[0](60, seed=2)
    assert set(drawn) == {"train", *list(streetview.LOOKS)[:2]} and args.looks == 2
    drawn.clear()
    pretrain.virl_looks(20, seed=2, looks=0)
    assert set(drawn) == {"train"}  # the training city's style alone
    default = pretrain.parse_args(["--env", "virl", "--vision", "--out", str(tmp_path / "d")])
    assert not hasattr(default, "looks")  # config.json of the runs before the flag: unchanged
    for bad in (["--vision", "--looks", "25"], ["--vision", "--looks", "-1"], ["--looks", "3"]):
        with pytest.raises(SystemExit) as exit_:
            pretrain.parse_args(["--env", "virl", *bad, "--out", str(tmp_path / "x")])
        assert exit_.value.code == 2
    assert "looks" in capsys.readouterr().err


def test_frame_right_measures_whether_turns_use_the_splits_action_space():
    oracle = evaluate.evaluate(evaluate.OraclePolicy(), env="virl", splits=("ood-rule",), n=6)["ood-rule"]
    assert oracle["frame_right"] == 1.0
    env = virl.eval_envs("ood-rule", n=1)[0]
    env.reset()
    as_if_id = virl.answer_text(env.rail[0], "absolute")  # the ID habit: a compass word
    assert env.step(as_if_id)[4]["frame_right"] is False
    env.step(virl.answer_text(env.rail[0], "relative"))
    assert env.frame_right is True


def test_rl_ablation_smoke_runs_every_row_and_writes_its_table(tmp_path):
    """experiments/rl_ablation.py --smoke: the shared warm start with revision turns, each row's
    ppo.py flags on a few tiny updates, and the table of start -> end changes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "experiments/rl_ablation.py", "--smoke", "--root", str(tmp_path),
           "--rows", "paper,viter1,episode-kl", "--seeds", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    warm = json.loads((tmp_path / "warm" / "config.json").read_text())
    assert warm["revise"] == 0.5
    viter1 = json.loads((tmp_path / "viter1-s0" / "config.json").read_text())
    assert viter1["max_attempts"] == 1 and viter1["eval_attempts"] == 5 and viter1["critic"] == "detached"
    kl = json.loads((tmp_path / "episode-kl-s0" / "config.json").read_text())
    assert kl["kl_coef"] == 0.2 and kl["gamma"] == 1.0  # the reference model is loaded and used:
    updates = [json.loads(ln) for ln in (tmp_path / "episode-kl-s0" / "metrics.jsonl").read_text().splitlines()]
    assert any(u.get("kl_ref", 0) > 0 for u in updates)
    paper = json.loads((tmp_path / "paper-s0" / "config.json").read_text())  # rl_ablation.PPO_BEFORE
    assert (paper["gamma"], paper["kl_coef"], paper["critic"]) == (0.9, 0.0, "shared")
    table = (tmp_path / "rl_ablation.md").read_text()
    assert "| paper |" in table and "| viter1 |" in table and "| episode-kl |" in table and " -> " in table
    bad = subprocess.run([sys.executable, "experiments/rl_ablation.py", "--rows", "nope"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "choose from" in bad.stderr and "Traceback" not in bad.stderr


def test_rft_ceiling_metrics_count_repeats_and_revisions():
    """experiments/rft_ceiling.episode_metrics on scripted answers: a policy that repeats one wrong
    answer (every revision a repeat, none correct) and one that is wrong once, then right."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import rft_ceiling

    class Scripted:
        needs_envs = True

        def __init__(self, fix_on_revision):
            self.fix = fix_on_revision

        def generate(self, obs_list, temperature=0.0, max_new_tokens=None, envs=None):
            wrong = '{"cards": [], "number": [1, 1, 1, 1], "formula": "1+1+1+1=24"}'
            return [evaluate.StandInGeneration(env.oracle_response() if self.fix and env.messages[-1]["role"] == "user"
                                               and len(env.messages) > 1 else wrong) for env in envs]

    hands = gp.eval_envs("id", n=4)
    stubborn = rft_ceiling.episode_metrics(rft_ceiling.play(Scripted(False), hands, 0.0, 32))
    assert stubborn == {"success": 0.0, "first_attempt": 0.0, "revision_correct": 0.0, "revision_repeats": 100.0}
    hands = gp.eval_envs("id", n=4)
    fixer = rft_ceiling.episode_metrics(rft_ceiling.play(Scripted(True), hands, 0.0, 32))
    assert fixer == {"success": 100.0, "first_attempt": 0.0, "revision_correct": 100.0, "revision_repeats": 0.0}


def test_rft_ceiling_smoke_trains_on_solved_conversations_and_writes_its_table(tmp_path):
    """experiments/rft_ceiling.py --smoke: sampling, the conversations in the public SFT format (all
    of them, and those with revision turns), sft.py on them, the evaluations and the table."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "experiments/rft_ceiling.py", "--smoke", "--root", str(tmp_path),
           "--rows", "all-1e-4,revisions-1e-4", "--seeds", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    records = json.loads((tmp_path / "samples-s0.json").read_text())
    revisions = json.loads((tmp_path / "samples-s0-revisions.json").read_text())
    assert records and all(r["conversations"][-1]["from"] == "gpt" for r in records)
    assert revisions and all(len(r["conversations"]) > 2 for r in revisions) and len(revisions) <= len(records)
    config = json.loads((tmp_path / "revisions-1e-4-s0" / "config.json").read_text())
    assert config["data"].endswith("samples-s0-revisions.json") and config["lr"] == 1e-4
    metrics = json.loads((tmp_path / "all-1e-4-s0" / "rft_eval.json").read_text())
    assert set(metrics) == {"greedy", "sampled"} and 0 <= metrics["sampled"]["success"] <= 100
    table = (tmp_path / "rft_ceiling.md").read_text()
    assert "| warm start |" in table and "| all-1e-4 | 1 |" in table and "| revisions-1e-4 | 1 |" in table


def test_style_gap_redraws_the_visual_ood_routes_in_the_training_style(tmp_path):
    """experiments/style_gap.py: the same routes, names and plans, only the street views' style
    changed (env.look), or no image at all; the oracle and the random stand-in through the CLI
    (a model folder loads as in evaluate.py)."""
    env = virl.eval_envs("ood-visual", n=1, vision=True, image_size=224)[0]
    own = env.reset()[0]["image"]
    env.look = "train"
    redrawn = env.reset()[0]["image"]
    assert env.route.city != "train" and own.tobytes() != redrawn.tobytes()
    assert redrawn.tobytes() == virl.render_grid(env.rail[0], "train", 224).tobytes()
    out = tmp_path / "gap.json"
    cmd = [sys.executable, "experiments/style_gap.py", "random", "oracle", "--episodes", "2", "--out", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["oracle"]["own style"]["step_accuracy"] == 100.0 and results["oracle"]["style_gap"] == 0.0
    rand = results["random"]
    assert rand["style_gap"] == rand["training style"]["step_accuracy"] - rand["own style"]["step_accuracy"]
    assert rand["own style"]["step_accuracy"] < 50 and "| random |" in run.stdout and "style gap (pp)" in run.stdout
    bad = subprocess.run([sys.executable, "experiments/style_gap.py", str(tmp_path / "nowhere")], cwd=ROOT,
                         timeout=60, capture_output=True, text=True)
    assert bad.returncode == 2 and "not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_turn_probe_asks_every_position_of_the_routes_with_the_right_history(tmp_path):
    """experiments/turn_probe.py: every rail position of the first routes once, by kind, greedy
    and sampled; a missing folder and a visual split without --vision are one line, exit 2."""
    rails = []
    for env in virl.eval_envs("id", n=2):
        env.reset()
        rails.append(env.rail)
    turns = sum(p.action.startswith("turn_direction(") and p.intersection for rail in rails for p in rail)
    out = tmp_path / "probe.json"
    cmd = [sys.executable, "experiments/turn_probe.py", "tiny", "--routes", "2", "--samples", "2", "--out", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    kinds = json.loads(out.read_text())["tiny"]
    assert sum(r["positions"] for r in kinds.values()) == sum(len(rail) for rail in rails)
    assert kinds["turn at an intersection"]["positions"] == turns > 0
    assert kinds["stop"]["positions"] == 2 and kinds["first turn"]["positions"] == 2
    for r in kinds.values():
        assert 0 <= r["greedy_wrong"] <= r["positions"]
        if r["greedy_wrong"]:
            assert 0 <= r["sampled_right_where_wrong"] <= 100 and 0 <= r["none_right_where_wrong"] <= 100
    assert "| tiny | turn at an intersection |" in run.stdout
    spec = importlib.util.spec_from_file_location("turn_probe", ROOT / "experiments" / "turn_probe.py")
    turn_probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(turn_probe)
    import ppo
    assert turn_probe.TEMPERATURE == ppo.CPU_TEMPERATURE["virl"]  # PPO's rollouts, not a guess
    for bad in ([str(tmp_path / "nowhere")], ["tiny", "--split", "ood-visual"]):
        run = subprocess.run([sys.executable, "experiments/turn_probe.py", *bad], cwd=ROOT, timeout=60,
                             capture_output=True, text=True)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_main_job_smoke_runs_both_arms_from_the_init_and_writes_its_table(tmp_path):
    """experiments/main_job.py --smoke: ppo.py and sft.py with their defaults (from inits/gp-l) on
    a few steps, the held-out hands of the init and of each final checkpoint, the table, the figure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "experiments/main_job.py", "--smoke", "--root", str(tmp_path), "--seeds", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, timeout=300, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for arm in ("ppo", "sft"):
        config = json.loads((tmp_path / f"{arm}-s0" / "config.json").read_text())
        assert (config.get("init") or config["model"]).endswith("inits/gp-l")
    held = json.loads((tmp_path / "held_out.json").read_text())
    assert set(held) == {"init", "ppo-s0", "sft-s0"} and all(h["n"] == 4 for h in held.values())
    table = (tmp_path / "main_job.md").read_text()
    assert "| ppo-s0 |" in table and "| sft-s0 |" in table and " -> " in table
    assert (tmp_path / "main_job_curves.png").is_file() and (tmp_path / "main_job_rl_curves.png").is_file()
