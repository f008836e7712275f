"""GeneralPoints (generalpoints.py, and its solvers in solver.py): solver, verifier, dealing, prompts,
episodes, rendering, CLI.

Run: python -m pytest tests/test_generalpoints.py -q      (about 15 s on one core)
"""
import ast
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction
from functools import lru_cache
from itertools import combinations_with_replacement
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import generalpoints as gp  # noqa: E402
import solver  # noqa: E402

OUTCOMES = {"correct", "wrong_value", "wrong_numbers", "illegal_formula", "wrong_cards"}


# --- an independent solver and evaluator, written differently from solver.py / generalpoints.py
@lru_cache(maxsize=None)
def can_make(nums, target):
    """Classic 24 search: replace any two numbers by a result of + - * / until one is left."""
    if len(nums) == 1:
        return nums[0] == target
    for i in range(len(nums)):
        for j in range(i + 1, len(nums)):
            a, b = nums[i], nums[j]
            rest = [nums[k] for k in range(len(nums)) if k not in (i, j)]
            results = {a + b, a - b, b - a, a * b} | ({a / b} if b else set()) | ({b / a} if a else set())
            if any(can_make(tuple(sorted(rest + [r])), target) for r in results):
                return True
    return False


def ast_value(formula):
    """(value, numbers used) of a formula by Python's own parser, in Fractions (no eval)."""
    numbers = []

    def walk(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            numbers.append(node.value)
            return Fraction(node.value)
        assert isinstance(node, ast.BinOp), ast.dump(node)
        a, b = walk(node.left), walk(node.right)
        ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b, ast.Div: lambda: a / b}
        return ops[type(node.op)]()

    return walk(ast.parse(formula, mode="eval").body), sorted(numbers)


# --- solver -----------------------------------------------------------------------------------
@pytest.mark.parametrize("top", [10, 13])  # rule id: values 1..10; rule ood: 1..13
def test_solver_agrees_with_brute_force_on_every_multiset(top):
    solvable = 0
    for ms in combinations_with_replacement(range(1, top + 1), 4):
        formula = solver.solve(list(ms))
        expected = can_make(tuple(Fraction(v) for v in ms), Fraction(24))
        assert (formula is not None) == expected, ms
        if formula is not None:
            solvable += 1
            assert ast_value(formula) == (24, list(ms)), (ms, formula)  # uses each number once, = 24
    assert solvable == {10: 566, 13: 1362}[top]  # the known counts of solvable 24-game hands


def test_solver_rational_and_other_targets():
    assert ast_value(solver.solve([1, 3, 4, 6]))[0] == 24  # only 6/(1-3/4)
    assert ast_value(solver.solve([3, 3, 8, 8]))[0] == 24  # only 8/(3-8/3)
    assert solver.solve([1, 1, 1, 1]) is None
    for nums, target in [([2, 3, 4], 10), ([5, 5, 5, 1], 24), ([7], 7), ([1, 2, 3, 4, 5], 120), ([2, 2, 0], 0)]:
        assert ast_value(solver.solve(nums, target))[0] == target
    assert solver.solve([2, 3], 7) is None


def test_solvability_table_is_fast():
    solver.solvable_table.cache_clear()
    start = time.perf_counter()
    table = solver.solvable_table()
    assert time.perf_counter() - start < 3.0 and len(table) == 1820


# --- verifier: every row of the paper's reward table with realistic answers ------------------------
CARDS = ["AS", "3C", "QS", "7S"]  # numbers 1, 3, 10, 7 (rule id) / 1, 3, 12, 7 (rule ood)


@pytest.mark.parametrize("outcome,reward,response", [
    ("correct", 5, '{"cards": ["AS", "3C", "QS", "7S"], "number": [1, 3, 10, 7], "formula": "1+3*10-7=24"}'),
    ("correct", 5, "```json\n{\n  'cards': ['AS', '3C', 'QS', '7S'],\n  'number': [1, 3, 10, 7],\n"
                   "  'formula': '10*3-7+1',\n}\n```"),  # fences, single quotes, trailing comma, no =24
    ("correct", 5, 'Sure! Here is my answer: {"cards": ["AS","3C","QS","7S"], "number": [1,3,10,7], '
                   '"formula": "3 * 10 - 7 + 1 = 24",} Hope it helps.'),
    ("correct", 5, '{"cards": ["A", "3", "Q", "7"], "number": [1, 3, 12, 7], "formula": "3*10+1-7=24"}'),
    ("correct", 5, 'My formula: {"cards": ["AS", "3C", "QS", "7S"], "formula": "3*10+1-7=24"}'),
    ("correct", 5, "formula: 3*10+1-7=24"),
    ("correct", 5, '{"formula": "3*10-7+1=25"}'),  # as in the public code, what follows '=' is ignored
    ("correct", 5, '{"formula": "3*10-7+1=24=24"}'),
    ("correct", 5, '{"formula": "3*10-7+1=twenty-four"}'),
    ("wrong_value", -1, '{"cards": ["AS", "3C", "QS", "7S"], "number": [1, 3, 10, 7], "formula": "1+3*10+7=24"}'),
    ("wrong_value", -1, '{"formula": "(10-7+1)*3=24"}'),
    ("wrong_value", -1, '{"formula": "1/(10-7-3)=24"}'),  # division by zero: legal, right numbers, no value
    ("wrong_numbers", -2, '{"formula": "3*8=24"}'),
    ("wrong_numbers", -2, '{"formula": "(12-7+1)*3=24"}'),  # Q counted as 12 under rule id
    ("wrong_numbers", -2, '{"formula": "(7-3)*(7-1)=24"}'),  # 7 used twice, Q not used
    ("wrong_numbers", -2, '{"formula": "10*3-7+1+0=24"}'),
    ("illegal_formula", -3, '{"formula": "3x10-7+1=24"}'),
    ("illegal_formula", -3, '{"formula": "(3*10-7+1=24"}'),
    ("illegal_formula", -3, '{"formula": "3*10-7+1)=24"}'),
    ("illegal_formula", -3, '{"formula": "3**10-7+1=24"}'),
    ("illegal_formula", -3, '{"formula": "-3+10*7-1=24"}'),  # no unary minus
    ("illegal_formula", -3, '{"formula": "3*10-7+1.0"}'),
    ("illegal_formula", -3, '{"formula": "3*10-7+1()"}'),
    ("wrong_numbers", -2, '{"formula": ""}'),  # as in the public code: no number is used
    ("wrong_numbers", -2, '{"formula": "=24"}'),
    ("illegal_formula", -3, '{"cards": ["AS", "3C", "QS", "7S"], "number": [1, 3, 10, 7]}'),
    ("illegal_formula", -3, "I think 3*10-7+1 = 24."),
    ("illegal_formula", -3, ""),
])
def test_reward_rows_language(outcome, reward, response):
    v = gp.verify(response, CARDS, rule="id")
    assert (v.outcome, v.reward) == (outcome, reward), v
    assert v.message and v.message.endswith(".")


def test_the_rule_decides_the_numbers():
    # rule ood: the cards are 1, 3, 12, 7. The "number" list may claim Q = 10: only the formula counts
    claim_10 = '{"cards": ["AS", "3C", "QS", "7S"], "number": [1, 3, 10, 7], "formula": "(12-7+1)*3=24"}'
    assert gp.verify(claim_10, CARDS, rule="ood").outcome == "wrong_value"  # right numbers, makes 18
    assert gp.verify('{"formula": "3*10+1-7"}', CARDS, rule="ood").outcome == "wrong_numbers"  # the ID answer
    solved = json.dumps({"cards": CARDS, "number": [1, 3, 10, 7], "formula": gp.solve([1, 3, 12, 7]) + "=24"})
    assert gp.verify(solved, CARDS, rule="ood").outcome == "correct"
    assert gp.verify(solved, CARDS, rule="id").outcome == "wrong_numbers"


def test_reward_rows_vision():
    good = '{"cards": ["A", "3", "Q", "7"], "number": [1, 3, 10, 7], "formula": "1+3*10-7=24"}'
    assert gp.verify(good, CARDS, vision=True).outcome == "correct"
    for cards in (["A", "3", "K", "7"], ["A", "2", "Q", "7"], ["A", "3", "Q"], ["A", "3", "Q", "7", "2"]):
        v = gp.verify(good.replace('"A", "3", "Q", "7"', json.dumps(cards)[1:-1]), CARDS, vision=True)
        assert (v.outcome, v.reward, v.message) == ("wrong_cards", -1.5, "you recognized wrong cards"), cards
    # cards are checked first: wrong cards and an illegal formula -> -1.5
    assert gp.verify(good.replace('"3"', '"4"').replace("1+3", "1+(3"), CARDS, vision=True).reward == -1.5
    # right ranks (any order, any reasonable spelling, any suit or none), then the formula rows apply
    for spelled in ('["7S", "QS", "3C", "AS"]', '["A", "3", "Q", "7"]', "['as', '3c', 'qs', '7s']",
                    '["ace of spades", "3 of clubs", "Q♠", "7 of spades"]', '["SA", "C3", "SQ", "S7"]',
                    '["AH", "3D", "QH", "7D"]', '["Ace", "3", "Queen", "7"]'):
        answer = good.replace('["A", "3", "Q", "7"]', spelled)
        assert gp.verify(answer, CARDS, vision=True).outcome == "correct", spelled
    assert gp.verify(good.replace("1+3*10-7", "(1+3*10-7"), CARDS, vision=True).reward == -3
    assert gp.verify(good.replace("1+3*10-7", "1+3*7-7"), CARDS, vision=True).reward == -2
    assert gp.verify(good.replace("1+3*10-7", "1+3*10+7"), CARDS, vision=True).reward == -1
    assert gp.verify('{"formula": "1+3*10-7=24"}', CARDS, vision=True).outcome == "wrong_cards"  # no cards listed
    assert gp.verify('{"formula": "1+3*10-7=24"}', CARDS, vision=False).outcome == "correct"  # GP-L ignores them


def test_verifier_checks_in_the_public_order():
    """judge's order: cards (GP-VL) -> legal formula -> numbers -> value. An answer that fails
    several checks gets the verdict of the first one it fails (CARDS = 1, 3, 10, 7 under rule id)."""
    def outcome(formula, cards=("A", "3", "Q", "7"), vision=False):
        answer = json.dumps({"cards": list(cards), "number": [1, 3, 10, 7], "formula": formula})
        v = gp.verify(answer, CARDS, vision=vision)
        return v.outcome, v.reward
    assert outcome("1+3*10-7=24") == ("correct", 5)
    assert outcome("1+3*10+7=24") == ("wrong_value", -1)  # the cards' numbers, another value
    assert outcome("2+3*10-8=24") == ("wrong_numbers", -2)  # makes 24, with other numbers
    assert outcome("2+3*10+7=24") == ("wrong_numbers", -2)  # wrong numbers and wrong value
    assert outcome("(2+3*10+7=24") == ("illegal_formula", -3)  # unclosed, wrong numbers and value
    assert outcome("1+3x10-7=24") == ("illegal_formula", -3)  # an illegal character, right numbers
    assert outcome("(2+3*10+7=24", ("K", "3", "Q", "7"), vision=True) == ("wrong_cards", -1.5)  # every check
    assert outcome("1+3*10-7=24", ("K", "3", "Q", "7"), vision=True) == ("wrong_cards", -1.5)
    assert outcome("1+3*10-7=24", ("K", "3", "Q", "7"), vision=False) == ("correct", 5)  # GP-L: no card check


def test_recognition_is_by_rank_only():
    """The public code compares plain ranks: an ID-trained model that reads a red QH as "Q" (or
    writes the black suit it saw in training, "QS") has recognised the card."""
    red = ["QH", "3D", "AH", "7D"]  # the visual-OOD colour
    for cards in (["Q", "3", "A", "7"], ["QS", "3C", "AS", "7C"], ["QH", "3D", "AH", "7D"]):
        answer = json.dumps({"cards": cards, "number": [10, 3, 1, 7], "formula": "1+3*10-7=24"})
        assert gp.verify(answer, red, vision=True).outcome == "correct", cards
        assert gp.cards_match(cards, red)
    assert not gp.cards_match(["K", "3", "A", "7"], red) and not gp.cards_match(["Q", "Q", "A", "7"], red)
    assert gp.card_rank("T") == "10" and gp.card_rank("10 of hearts") == "10" and gp.card_rank("X") is None


def test_messages_are_the_public_verifiers():
    """Feedback in the public code's words (utils_rl.py, step_rewards): its reasons joined with
    ', ' and a final '.', including the partially-correct-prefix message."""
    msg = lambda f: gp.verify(json.dumps({"formula": f}), CARDS).message  # noqa: E731
    assert msg("1+3*10-7") == "Correct solution."
    assert msg("1+3*10+7") == "1+3*10 is partially correct but the full formula does not match any solution."
    assert msg("7*3+1") == "you didn't use numbers: [10]."
    assert msg("2+3*10-7") == "you used invalid numbers: [2], you didn't use numbers: [1]."
    assert msg("(12-7+1)*3") == "you used invalid numbers: [12], you didn't use numbers: [10]."
    assert msg("(7-3)*(7-1)") == "you used numbers: [7] too many times, you didn't use numbers: [10]."
    assert msg("") == "you didn't use numbers: [1, 3, 10, 7]."
    assert msg("3*10-7+1٣") == "illegal characters."
    assert gp.verify("no json here", CARDS).message == "illegal characters."
    assert msg("3*10-7++1") == "invalid sequence after operator."
    assert msg("3*10)-7+(1") == "unmatched closing parenthesis, unmatched opening parenthesis."
    assert msg("3(10)-7+1") == "invalid sequence before '(', unmatched closing parenthesis."
    assert msg("3*10-7+1)") == "unmatched closing parenthesis."
    assert msg("((3*10-7+1)") == "unmatched opening parenthesis."  # ours: the public scan misses it
    assert msg("3*10-7+1-") == "invalid sequence at the end."  # ours, likewise
    assert msg("1/(10-7-3)") == "1 is partially correct but the full formula does not match any solution."
    assert msg("7*3-10+1") == "7* is partially correct but the full formula does not match any solution."
    only = ["3S", "3C", "8S", "8C"]  # one public solution: 8/(3-8/3)
    assert gp.verify('{"formula": "3*8-3+8"}', only).message == "your formula does not match any solution."
    assert gp.FEEDBACK.format(msg("3*10")) == "You failed this trial because you didn't use numbers: [1, 7]."


def test_public_solutions_are_the_public_solvers():
    sols = solver.public_solutions((1, 3, 7, 10))
    assert "1+3*10-7" in sols and "(1+3*10)-7" in sols and "3*10-7+1" in sols and len(sols) == 44
    assert all(ast_value(s) == (24, [1, 3, 7, 10]) for s in sols)
    assert solver.public_solutions((3, 3, 8, 8)) == ("8/(3-8/3)",)
    assert solver.public_solutions((1, 1, 1, 1)) == ()
    # the public solver and ours agree on which hands can make 24 (checked on a sample)
    for ms in list(solver.solvable_table())[::37]:
        assert bool(solver.public_solutions(ms)) == (solver.solvable_table()[ms] is not None), ms


# --- verifier: never raises, never hangs ---------------------------------------------------------
ADVERSARIAL = [
    "x" * 1_000_000, '{"formula": "' + "1+" * 500_000 + '1"}', '{"formula": "' + "(" * 100_000,
    "formula: " * 100_000, '{"formula": "9**9**9"}', "9**9**9", '{"formula": "__import__(\'os\').system(\'ls\')"}',
    "__import__('os')", '{"formula": "(((((((((((((((((((((((((((1)))))))))))))))))))))))))))"}',
    '{"formula": "' + "9" * 199 + '"}', '{"formula": "' + "*".join(["99999"] * 33) + '"}', '{"formula": "1/0"}',
    '{"formula": "٣*٨=٢٤"}', '{"formula": "３*８"}', '{"formula": "\\u0033*8"}', '{"formula": "1e999"}',
    '{"formula": "\x00\n\t"}', '{"formula": null}', '{"formula": [1, 2]}', "{'formula': '3*8',", '"formula"',
    '{"cards": [' + '"AS",' * 100_000 + '], "formula": "3*8"}', '{"cards": "AS 3C QS 7S"}', "\ud800",
    '{"cards": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[["', "[" * 100_000, "{" * 100_000, '"' * 100_000,
]


@pytest.mark.parametrize("vision", [False, True])
def test_adversarial_answers_are_handled_fast(vision):
    for text in ADVERSARIAL:
        start = time.perf_counter()
        v = gp.verify(text, CARDS, vision=vision)
        assert isinstance(v, gp.Verdict) and v.outcome in OUTCOMES and v.outcome != "correct"
        assert time.perf_counter() - start < 0.5, text[:40]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300), rule=st.sampled_from(gp.RULES), vision=st.booleans())
def test_fuzz_any_text(text, rule, vision):
    v = gp.verify(text, CARDS, rule=rule, vision=vision)
    assert v.outcome in OUTCOMES and v.reward == gp.REWARDS[v.outcome] and isinstance(v.message, str)


def test_a_verifier_bug_is_raised_not_scored(monkeypatch):
    """verify turns only what a formula's own arithmetic or nesting can raise into an outcome: any
    other exception (here a TypeError in a helper) is a bug of the verifier and surfaces."""
    answer = '{"formula": "1+3*10-7=24"}'

    def bug(*args):
        raise TypeError("a verifier bug")

    def overflow(*args):
        raise OverflowError("a huge value")

    monkeypatch.setattr(gp, "_syntax_errors", bug)
    with pytest.raises(TypeError, match="a verifier bug"):
        gp.verify(answer, CARDS)
    monkeypatch.undo()
    assert gp.verify(answer, CARDS).outcome == "correct"
    monkeypatch.setattr(gp, "_evaluate", overflow)
    assert gp.verify(answer, CARDS) == gp.Verdict("illegal_formula", -3.0, "illegal characters.")


SHAPES = ["(a o b) o (c o d)", "((a o b) o c) o d", "(a o (b o c)) o d", "a o ((b o c) o d)",
          "a o (b o (c o d))", "a o b o c o d", "(a o b o c) o d", "a o (b o c o d)"]


@st.composite
def near_miss_formulas(draw):
    """A formula over the card numbers 1 3 7 10 in some order, shape and operators, then maybe
    mutated by deleting or inserting a character (a realistic near-miss of a model)."""
    nums = draw(st.permutations(["1", "3", "7", "10"]))
    text = draw(st.sampled_from(SHAPES))
    for x, n in zip("abcd", nums):
        text = text.replace(x, n)
    while " o " in text:
        text = text.replace(" o ", draw(st.sampled_from("+-*/")), 1)
    text = text.replace(" ", "")
    i = draw(st.integers(0, len(text)))
    mutation = draw(st.sampled_from(["none", "none", "delete", "insert"]))
    if mutation == "delete" and i < len(text):
        text = text[:i] + text[i + 1:]
    elif mutation == "insert":
        text = text[:i] + draw(st.sampled_from("13710+-*/() ")) + text[i:]
    return text + draw(st.sampled_from(["", "=24", " = 24", "=25"]))


@settings(max_examples=600, deadline=None)
@given(formula=near_miss_formulas())
def test_fuzz_formulas_agree_with_python(formula):
    """Whenever the verifier accepts a formula's syntax, Python's own parser reads the same
    numbers and value (checked in Fractions); it says correct exactly when that value is 24."""
    v = gp.verify(json.dumps({"formula": formula}), CARDS)
    expr = re.sub(r"\b0+(\d)", r"\1", formula.split("=")[0]).strip()  # "01" reads as 1 (Python refuses it)
    try:
        value, numbers = ast_value(expr)
    except (SyntaxError, AssertionError, KeyError):  # not a plain binary-operator formula
        assert v.outcome == "illegal_formula", (formula, v)
        return
    except ZeroDivisionError:
        assert v.outcome in ("wrong_value", "wrong_numbers"), (formula, v)
        return
    if numbers != [1, 3, 7, 10]:
        assert v.outcome == "wrong_numbers", (formula, v)
    else:  # what follows '=' is ignored, as in the public code
        assert v.outcome == ("correct" if value == 24 else "wrong_value"), (formula, v)


# --- dealing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rule,color", [("id", "black"), ("ood", "black"), ("id", "red"), ("ood", "mixed")])
def test_dealt_hands(rule, color):
    env = gp.GeneralPointsEnv(rule, color, seed=1)
    suits, faces, triples = Counter(), [], 0
    for _ in range(2000):
        obs, info = env.reset()
        cards = info["cards"]
        suits.update(c[-1] for c in cards)
        assert info["numbers"] == [gp.card_value(c, rule) for c in cards]
        assert can_make(tuple(sorted(Fraction(v) for v in info["numbers"])), Fraction(24))  # solvable
        assert ast_value(info["solution"].split("=")[0]) == (24, sorted(info["numbers"]))
        faces.append(sum(c[:-1] in ("J", "Q", "K") for c in cards))
        triples += max(Counter(c[:-1] for c in cards).values()) >= 3
        assert f"Cards: {[c[:-1] for c in cards]}" in obs["messages"][0]["content"][0]["text"]
    assert set(suits) == set(gp.COLORS[color])  # the colour's suits, all of them
    assert triples > 0  # ranks are drawn with replacement, as the public code deals
    if rule == "ood":  # three uniform ranks and one J/Q/K: 1 + 3 * 3/13 = 1.69 faces before the
        assert min(faces) >= 1 and 1.5 < np.mean(faces) < 1.75  # solvability filter (~1.61 after)
    else:
        assert 0 < sum(f > 0 for f in faces) < 2000 and 0.5 < np.mean(faces) < 1.0  # 4 * 3/13 = 0.92


def test_deal_matches_the_public_distribution():
    """Rank frequencies of solvable ID hands, from the public generator's scheme re-run here
    independently (uniform ranks with replacement, rejection until solvable)."""
    import random
    rng, public = random.Random(0), Counter()
    while sum(public.values()) < 20000 * 4:
        ranks = [rng.randint(1, 13) for _ in range(4)]
        if can_make(tuple(sorted(Fraction(min(r, 10)) for r in ranks)), Fraction(24)):
            public.update(ranks)
    ours = Counter(gp.RANKS.index(c[:-1]) + 1 for _ in range(20000) for c in gp.deal(rng, "id", "black"))
    for r in range(1, 14):
        assert abs(ours[r] - public[r]) / 80000 < 0.01, r  # each rank's share within 1 point


def test_dealing_is_reproducible():
    hands = lambda env, k: [env.reset()[1]["cards"] for _ in range(k)]  # noqa: E731
    assert hands(gp.make_env("id", seed=7), 50) == hands(gp.make_env("id", seed=7), 50)
    assert hands(gp.make_env("id", seed=7), 50) != hands(gp.make_env("id", seed=8), 50)
    env = gp.make_env("id", seed=7)
    first = hands(env, 3)
    assert [env.reset(seed=7)[1]["cards"]] + hands(env, 2) == first  # reset(seed) reseeds


def test_splits_and_eval_envs():
    assert gp.SPLITS == ("id", "ood-rule", "ood-visual") and gp.ANSWER_KEY == "formula" and gp.MAX_ATTEMPTS == 5
    for split, (rule, color) in [("id", ("id", "black")), ("ood-rule", ("ood", "black")),
                                 ("ood-visual", ("id", "red"))]:
        env = gp.make_env(split, seed=0)
        assert (env.rule, env.color) == (rule, color)
        envs = gp.eval_envs(split)
        assert len(envs) == 234
        hands = [e.reset()[1]["cards"] for e in envs]
        assert len({tuple(sorted(h)) for h in hands}) == 234  # distinct hands
        assert [e.reset()[1]["cards"] for e in gp.eval_envs(split, n=30)] == hands[:30]  # fixed
    code = "import generalpoints as gp; print([e.reset()[1]['cards'] for e in gp.eval_envs('ood-rule', 20)])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    assert out.strip() == str([e.reset()[1]["cards"] for e in gp.eval_envs("ood-rule", 20)])
    with pytest.raises(ValueError):
        gp.make_env("ood")


def test_held_out_hands_are_fixed_distinct_and_never_evaluation_hands():
    """eval_envs(held_out=True): other fixed hands for checking that a gain on the 234 evaluation
    hands is not theirs alone; none of them is an evaluation hand's card set."""
    evaluation = {tuple(sorted(e.reset()[1]["cards"])) for e in gp.eval_envs("id")}
    held = [tuple(sorted(e.reset()[1]["cards"])) for e in gp.eval_envs("id", n=400, held_out=True)]
    assert len(set(held)) == 400 and not set(held) & evaluation
    assert held[:50] == [tuple(sorted(e.reset()[1]["cards"])) for e in gp.eval_envs("id", n=50, held_out=True)]
    first = gp.eval_envs("id", n=1, held_out=True)[0]
    assert "[Task Description]" in first.reset()[0]["messages"][0]["content"][0]["text"]  # the ID prompt


# --- episodes --------------------------------------------------------------------------------
def test_five_wrong_attempts_end_truncated():
    env = gp.make_env("id", seed=3)
    obs, info = env.reset()
    assert info["verdict"] is None and info["attempt"] == 0 and obs["image"] is None
    assert [m["role"] for m in obs["messages"]] == ["user"]
    wrong_value = gp.answer_variants(env.cards, env.rule)[1]
    assert gp.verify(wrong_value, env.cards).outcome == "wrong_value"
    wrong = ['{"formula": "1+1"}', "no idea", '{"formula": "(("}', wrong_value, '{"formula": "1/0"}']
    expected = [-2, -3, -3, -1, -2 - 1]
    for k, (answer, reward) in enumerate(zip(wrong, expected), start=1):
        obs, r, terminated, truncated, info = env.step(answer)
        assert (r, terminated, truncated, info["attempt"]) == (reward, False, k == 5, k)
        msgs = obs["messages"]
        if k < 5:  # the conversation so far + the answer + the verifier's feedback turn
            assert len(msgs) == 1 + 2 * k
            assert msgs[-2] == {"role": "assistant", "content": [{"type": "text", "text": answer}]}
            assert msgs[-1]["role"] == "user"
            assert msgs[-1]["content"][0]["text"] == "You failed this trial because " + info["verdict"].message
    assert not info["solved"]
    with pytest.raises(RuntimeError):
        env.step(env.oracle_response())


def test_right_answer_ends_the_episode():
    env = gp.make_env("ood-rule", seed=4, max_attempts=3)
    obs, info = env.reset()
    env.step("3*8")
    obs, r, terminated, truncated, info = env.step(env.oracle_response())
    assert (r, terminated, truncated, info["attempt"], info["solved"]) == (5, True, False, 2, True)
    # a one-attempt env: a wrong answer is reward - 1 and truncated
    env = gp.make_env("id", seed=4, max_attempts=1)
    env.reset()
    assert env.step('{"formula": "1"}')[1:4] == (-3, False, True)


def test_vision_observation_and_sft_examples():
    env = gp.make_env("ood-visual", vision=True, seed=0)
    obs, info = env.reset()
    first = obs["messages"][0]["content"]
    assert first[0] == {"type": "image"} and first[1]["type"] == "text"
    assert "Cards:" not in first[1]["text"] and "in the image" in first[1]["text"]
    assert obs["image"].size == (gp.IMAGE_SIZE, gp.IMAGE_SIZE)
    for vision in (False, True):
        examples = gp.sft_examples(5, rule="ood", vision=vision, seed=1)
        for ex in examples:
            user, answer = ex["messages"]
            assert (user["role"], answer["role"]) == ("user", "assistant")
            assert (ex["image"] is not None) == vision
            text = answer["content"][0]["text"]
            ranks = json.loads(text)["cards"]
            assert list(json.loads(text)) == ["cards", "number", "formula"]  # the answer key comes last
            assert all(r in gp.RANKS for r in ranks)  # plain ranks, as the public data has them
            cards = [r + "H" for r in ranks]  # recognition is by rank: any suit
            assert gp.verify(text, cards, rule="ood", vision=vision).outcome == "correct"
    assert gp.sft_examples(3, seed=2) == gp.sft_examples(3, seed=2)


def test_revision_warm_start_data():
    """sft_examples(revise=...): the PPO warm start's data. ID conversations, half with 1-4 failed
    attempts, each answered by the verifier's feedback, then the right answer; nothing of the
    OOD rule anywhere; revise=0 gives the plain single-turn pairs (the paper's SFT data)."""
    examples = gp.sft_examples(300, seed=4, revise=0.5)
    revised = 0
    for ex in examples:
        msgs = ex["messages"]
        roles = [m["role"] for m in msgs]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and 1 <= len(roles) // 2 <= gp.MAX_ATTEMPTS
        revised += len(roles) > 2
        text = "\n".join(m["content"][-1]["text"] for m in msgs)
        assert "'11', '12', and '13'" not in text and "count as '10'." in text
        for feedback in msgs[2:-1:2]:
            assert feedback["content"][-1]["text"].startswith("You failed this trial because ")
        ranks = json.loads(msgs[-1]["content"][-1]["text"])["cards"]
        cards = [r + "S" for r in ranks]
        assert gp.verify(msgs[-1]["content"][-1]["text"], cards).outcome == "correct"
        for answer in msgs[1:-1:2]:
            assert gp.verify(answer["content"][-1]["text"], cards).outcome != "correct"
    assert 0.4 < revised / len(examples) < 0.6
    plain = gp.sft_examples(20, seed=4)
    assert all(len(ex["messages"]) == 2 for ex in plain)
    assert [ex["messages"][0] for ex in plain] == [ex["messages"][0] for ex in gp.sft_examples(20, seed=4, revise=0.5)]


GP_L_ID = """
[Task Description]
You are an expert 24 points card game player. You will receive a set of 4 cards.
Note that 'J', 'Q', and 'K' count as '10'., and each card must be used once.
Your goal is to output a formula that evaluates to 24 using numbers from the cards and operators such as \
'+', '-', '*', '/', '(', ')', and '='.

[Input]
Cards: ['A', '3', 'Q', '7']

[Output]
{
  "cards": [x, y, z, w], where 'J', 'Q', and 'K' count as '10'.,
  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,
  "formula": 'an equation that equals 24',
}

"""
GP_VL_OOD = """
[Task Description]
You are an expert 24 points card game player. You are observing these four cards in the image.
Note that 'J', 'Q', and 'K' count as '11', '12', and '13' respectively., and each card must be used once.
Your goal is to output a formula that evaluates to 24 using numbers from the cards and operators such as \
'+', '-', '*', '/', '(', ')', and '='.

[Output]
Your response should be a valid json file in the following format:
{
  "cards": [x, y, z, w], where 'J', 'Q', and 'K' count as '11', '12', and '13' respectively.,
  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,
  "formula": 'an equation that equals 24',
}

"""


def test_prompts_are_the_public_templates_word_for_word():
    """Q_GeneralPoint_EQN_L / _VL of the public prompt_lib/prompts.py, as its trainer formats them
    (face_card_msg ends with '.', cards as plain ranks with 10 for T)."""
    assert gp.prompt_text(["AS", "3C", "QS", "7S"], rule="id") == GP_L_ID
    assert gp.prompt_text(["AH", "3D", "QH", "7D"], rule="ood", vision=True) == GP_VL_OOD
    ood_l = GP_L_ID.replace("count as '10'.", "count as '11', '12', and '13' respectively.")
    assert gp.prompt_text(["AS", "3C", "QS", "7S"], rule="ood") == ood_l
    id_vl = GP_VL_OOD.replace("count as '11', '12', and '13' respectively.", "count as '10'.")
    assert gp.prompt_text(["AH", "3D", "QH", "7D"], rule="id", vision=True) == id_vl
    assert "Cards: ['10', 'K', 'J', 'A']" in gp.prompt_text(["10S", "KC", "JS", "AC"])
    assert "[Output Example]" not in GP_L_ID + GP_VL_OOD and "Please only output" not in GP_L_ID + GP_VL_OOD


def test_tokenizer_corpus_covers_every_variant():
    corpus = "\n".join(gp.tokenizer_corpus(200))
    for needle in ["'J', 'Q', and 'K' count as '10'.", "count as '11', '12', and '13' respectively.", "in the image",
                   "Cards: [", "You failed this trial because you recognized wrong cards",
                   "You failed this trial because you used invalid numbers", "You failed this trial because illegal",
                   "is partially correct but the full formula does not match any solution.",
                   "You failed this trial because you didn't use numbers", '"formula": "']:
        assert needle in corpus, needle


# --- rendering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [224, 560, (800, 600)])
def test_render(size):
    w, h = (size, size) if isinstance(size, int) else size
    card_w = int(min(w / 4 * 0.9, h * 0.9 * 5 / 7))
    gap = (w - 4 * card_w) / 5
    columns = np.arange(w)
    on_card = [(columns >= gap + i * (card_w + gap)) & (columns < gap + i * (card_w + gap) + card_w) for i in range(4)]
    for cards in (["AS", "10C", "QS", "7C"], ["AS", "10H", "QS", "7D"], ["KD", "2H", "JH", "9D"]):
        img = gp.render(cards, size)
        assert img.size == (w, h) and img.mode == "RGB"
        px = np.asarray(img).astype(int)  # [h, w, 3]
        for y, x in [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (2, w // 2)]:
            assert tuple(px[y, x]) == (0x35, 0x65, 0x4D)  # the casino-green table
        red = (px[..., 0] > 150) & (px[..., 1] < 90) & (px[..., 2] < 90)  # [h, w]
        red_columns = red.any(axis=0)  # [w]
        for i, card in enumerate(cards):
            assert red_columns[on_card[i]].any() == (card[-1] in "HD"), card  # red only on red suits
        assert not red_columns[~np.any(on_card, axis=0)].any()
        assert (px == 255).all(axis=-1).sum() > w * h // 20  # white cards


def test_cards_differ_in_the_image():
    images = {c: gp.render([c, "2S", "3S", "4S"], 224).tobytes() for c in ("10S", "JS", "QS", "KS", "AS", "AC")}
    assert len(set(images.values())) == len(images)


# --- CLI ---------------------------------------------------------------------------------------
def run_cli(*args, stdin=""):
    return subprocess.run([sys.executable, str(ROOT / "generalpoints.py"), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_cli_show_writes_a_png(tmp_path):
    out = run_cli("--show", str(tmp_path / "hand.png"), "--rule", "ood", "--color", "red", "--seed", "3")
    assert out.returncode == 0, out.stderr
    img = Image.open(tmp_path / "hand.png")
    assert img.format == "PNG" and img.size == (1200, 1200)


def test_cli_play_and_errors(tmp_path):
    env = gp.GeneralPointsEnv("ood", "black", seed=5)
    env.reset()
    out = run_cli("--play", "--rule", "ood", "--seed", "5", stdin="(1+2)*8\n" + env.oracle_response() + "\n")
    assert out.returncode == 0, out.stderr
    assert "You failed this trial because" in out.stdout and "correct: reward +5" in out.stdout
    assert "bye" in out.stdout  # end of input ends the game cleanly
    for bad in (["--rule", "xyz", "--play"], [], ["--show", str(tmp_path / "no" / "x.png")], ["--show", "x.txt"],
                ["--play", "--seed", "abc"]):
        out = run_cli(*bad)
        assert out.returncode != 0 and "Traceback" not in out.stderr and "error" in out.stderr, bad
        assert re.match(r"(generalpoints.py: )?error: ", out.stderr.strip().splitlines()[-1]), out.stderr
