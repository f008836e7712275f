"""GeneralPoints: the 24-points card game of "SFT Memorizes, RL Generalizes" (Chu, Zhai et al.
2025, Section 4.1; public code: gym_cards/envs/general_points_oneline.py, utils_rl.py).

Four cards are dealt; the player answers with a JSON object naming the cards (by rank), their
numbers, and a formula that uses each number exactly once with + - * / and brackets to make 24:
    {"cards": ["A", "3", "Q", "7"], "number": [1, 3, 10, 7], "formula": "1+3*10-7=24"}
A verifier scores each attempt; after a wrong one the conversation goes on with the user turn
`You failed this trial because <reasons>` and the player tries again, up to 5 attempts per
hand (the paper's sequential revision, VIter). Rewards per attempt: correct +5 (the episode
ends), right numbers but wrong value -1, wrong numbers -2, illegal formula -3, and for GP-VL
cards recognised wrongly -1.5 (checked first); failing the last attempt costs -1 more.

The paper's variants, i.e. our splits (A = 1 always; ood-rule hands hold at least one J, Q or K):
    id          J, Q, K count as 10;            black suits (S, C)
    ood-rule    J, Q, K count as 11, 12, 13;    black suits
    ood-visual  J, Q, K count as 10;            red suits (H, D)
GP-L lists the plain ranks in the prompt (`Cards: ['A', '3', 'Q', '7']`); GP-VL shows the cards
in an image instead (four cards on a casino-green table, drawn by cards.py), image first.
Prompts, the deal and the feedback messages are the public code's, word for word. Recognition
is by rank, as in the public code: a red QH read as "Q" (or "QS") is recognised right.

Where we differ from the public code, and why (details at the code named):
  * one outcome per attempt, exactly the paper's table (judge): no summed penalties, no +1 for
    a parse-failing prefix of a solution, and the -1 goes to the last failed attempt, which ends
    the episode (truncated=True), with no extra generation spent only to receive it;
  * its bugs are not copied: the value is exact (its float eval never rewards 8/(3-8/3)); an
    unclosed '(' or a trailing operator is illegal (_syntax_errors); spaces are allowed; GP-VL
    cards are read leniently (card_rank); formulas over 200 characters are illegal;
  * solvability comes from a table of all 1820 multisets of 4 values (solver.py), so a deal
    never searches (the public code brute-forces with eval: ~1 reset/s);
  * cards are drawn in code (cards.py); the SFT answer is one compact JSON line (answer_text).

    python generalpoints.py --play [--rule id|ood] [--color black|red|mixed] [--seed N]
    python generalpoints.py --show hand.png [--rule ood] [--seed 3]   # a hand's image
"""
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from cards import render
from solver import TARGET, parse, public_solutions, solvable_table, solve

ANSWER_KEY = "formula"  # the "answer" part of a response starts here (the paper's thought_prob_coef, from RL4VLM)
MAX_ATTEMPTS = 5  # VIter: attempts per hand in training and evaluation (the paper, public configs: verify_iter 5)
SPLITS = ("id", "ood-rule", "ood-visual")  # the paper's; val-rule below is ours (the laptop experiment)
SPLIT_VARIANTS = {"id": ("id", "black"), "ood-rule": ("ood", "black"), "ood-visual": ("id", "red"),
                  "val-rule": ("val", "black")}
N_EVAL = 234  # hands per evaluation split in the paper
IMAGE_SIZE = 224  # default render size: what the tiny VLMs of policy.py see (one 224 px image tile)
PAPER_IMAGE_SIZE = 1200  # the public code's table image (resolution=1200), used by --preset paper

RANKS = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
SUITS = ("S", "C", "H", "D")  # spades, clubs, hearts, diamonds
COLORS = {"black": ("S", "C"), "red": ("H", "D"), "mixed": SUITS}
RULES = ("id", "ood")  # the paper's two rules; a rule can also be any (J, Q, K) values, e.g. (3, 7, 1)
FACE_VALUES = {"id": (10, 10, 10), "ood": (11, 12, 13),
               "val": (3, 6, 9)}  # ours: a held-out rule for tuning the laptop experiment without the OOD one
REWARDS = {"correct": 5.0, "wrong_value": -1.0, "wrong_numbers": -2.0,
           "illegal_formula": -3.0, "wrong_cards": -1.5}
EXHAUSTED_PENALTY = -1.0  # added by the env to the last failed attempt
FEEDBACK = "You failed this trial because {}"
MAX_RESPONSE_CHARS = 65536  # verify reads at most this much of a response
MAX_FORMULA_CHARS = 200  # longer formulas are illegal, "your formula is too long." (ours: bounds the work)


@dataclass(frozen=True)
class Verdict:
    outcome: str  # correct | wrong_value | wrong_numbers | illegal_formula | wrong_cards (virl: its own)
    reward: float  # the paper's table; the attempts-exhausted -1 is added by the env, not here
    message: str  # short reason, used in "You failed this trial because <message>"


def face_values(rule):
    """The (J, Q, K) values of a rule: 'id' -> (10, 10, 10), 'ood' -> (11, 12, 13), or the rule
    itself when it is a triple of values in 1..13 (experiments/pretrain.py's mixture)."""
    if isinstance(rule, str):
        if rule not in FACE_VALUES:
            raise ValueError(f"unknown rule {rule!r}: use {', '.join(FACE_VALUES)} or three values in 1..13")
        return FACE_VALUES[rule]
    faces = tuple(rule)
    if len(faces) != 3 or not all(isinstance(v, int) and 1 <= v <= 13 for v in faces):
        raise ValueError(f"a rule is three face values (J, Q, K) in 1..13, not {rule!r}")
    return faces


def rule_sentence(rule):
    """"'J', 'Q', and 'K' count as '10'" (all three equal) or "... count as '11', '12', and
    '13' respectively": the paper's two sentences, and the same form for any other values."""
    j, q, k = face_values(rule)
    if j == q == k:
        return f"'J', 'Q', and 'K' count as '{j}'"
    return f"'J', 'Q', and 'K' count as '{j}', '{q}', and '{k}' respectively"


def card_value(card, rule="id"):
    """'QS' -> 10 under rule id, 12 under rule ood, q under a rule (j, q, k); 'AH' -> 1; '7C' -> 7."""
    v = RANKS.index(card[:-1]) + 1
    return v if v <= 10 else face_values(rule)[v - 11]


@lru_cache(maxsize=4096)
def _card_values(faces):
    return {r + s: card_value(r + s, faces) for r in RANKS for s in SUITS}


def card_values(rule):
    """{card: value} under a rule, e.g. card_values('ood')['QS'] == 12 (cached per rule)."""
    return _card_values(face_values(rule))


# ---------------------------------------------------------------------------------------------
# VERIFIER (the paper's reward table; public code: utils_rl.py, step_rewards). Order: cards (GP-VL
# only) -> formula legal -> numbers -> value, one outcome per attempt. The messages are the public
# code's reasons joined with ', ' and a final '.', e.g. "you used invalid numbers: [7], you didn't
# use numbers: [3]." The "formula" (and "cards") keys are looked for anywhere in the text, so
# quotes, trailing commas, code fences and prose all work; a key given twice counts the first
# time (as in virl.py); a quoted key ("formula": / 'formula':) wins over a bare one (formula:).
_KEY_RE = {k: (re.compile(r"[\"']" + k + r"[\"']\s*:\s*", re.I), re.compile(k + r"\s*:\s*", re.I))
           for k in ("formula", "cards", "number")}
_UNQUOTED_RE = re.compile(r"[^,}\n]*")
_TOKEN_RE = re.compile(r"[0-9]+|\S")  # ASCII digit runs, or any single non-space character
_DIGITS = frozenset("0123456789")  # str.isdigit() would accept '٣'; int('٣') == 3
_OPERATORS = frozenset("+-*/()")
_RANK_NAMES = {"ACE": "A", "1": "A", "T": "10", "JACK": "J", "QUEEN": "Q", "KING": "K"}


def _field(text, key):
    """The raw value of `"key": ...` in text (a quoted string's inside, or up to , } or newline)."""
    quoted, bare = _KEY_RE[key]
    m = quoted.search(text) or bare.search(text)
    if m is None:
        return None
    i = m.end()
    if i < len(text) and text[i] in "\"'":
        j = text.find(text[i], i + 1)
        value = text[i + 1:] if j < 0 else text[i + 1:j]
        if "\\" in value and text[i] == '"':  # JSON escapes such as \u0033 -> 3
            try:
                value = json.loads(f'"{value}"')
            except ValueError:
                pass
        return value
    if key in ("cards", "number"):
        j = text.find("]", i)
        return text[i + 1:j] if i < len(text) and text[i] == "[" and j >= 0 else None
    return _UNQUOTED_RE.match(text, i).group()


def card_rank(text):
    """The rank a recognised card names, or None: 'Q', 'q', 'QS', 'Q♥', '10', 'T', 'Queen of
    hearts' -> 'Q' / '10'. Recognition is by rank: the paper compares plain ranks, never suits."""
    s = text.strip().strip("\"'` ").upper()
    s = s.partition(" OF ")[0].strip().replace(" ", "")
    for rank in (s, s[:-1], s[1:]):  # the rank alone, rank + suit letter or symbol, suit + rank
        rank = _RANK_NAMES.get(rank, rank)
        if rank in RANKS:
            return rank
    return None


def cards_match(recognized, cards):
    """Whether the recognised cards have the true cards' ranks, in any order (suits are ignored,
    as in the public code, which compares plain ranks such as 'Q' and '10')."""
    if recognized is None or len(recognized) != len(cards):
        return False
    return sorted(map(str, map(card_rank, recognized))) == sorted(c[:-1] for c in cards)


def recognized_cards(response):
    """The "cards" list of a response as strings, or None when there is none."""
    raw = _field(str(response)[:MAX_RESPONSE_CHARS], "cards")
    return None if raw is None else [c for c in (p.strip().strip("\"'") for p in raw.split(",")) if c]


def claimed_numbers(response):
    """The "number" list of a response as ints, or None when there is none or it is not all
    integers: under a rule, whether it holds the hand's numbers says if the rule was read right."""
    raw = _field(str(response)[:MAX_RESPONSE_CHARS], "number")
    parts = None if raw is None else [p.strip().strip("\"'") for p in raw.split(",")]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) < 4 for p in parts):
        return None
    return [int(p) for p in parts]


def _apply(op, a, b):
    """a op b, exact: ints until a division makes a Fraction; None (undefined) after a division by zero."""
    if a is None or b is None or (op == "/" and b == 0):
        return None
    return a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else Fraction(a) / b


def _evaluate(tokens):
    """The exact value of a well-formed formula's tokens, or None if it divides by zero:
    _evaluate(['(', '1', '+', '3', ')', '*', '6']) == 24 (the grammar is solver.parse)."""
    return parse(tokens, int, _apply)


def _syntax_errors(tokens):
    """The public code's token-order scan (utils_rl.py, step_rewards), one message per violation,
    plus the two end checks it lacks (an unclosed '(' and a trailing operator pass there)."""
    errors, prev, depth = [], None, 0
    for tok in tokens:
        kind = "number" if tok[0] in _DIGITS else "operator" if tok in "+-*/" else tok
        if kind == "number" and prev not in (None, "operator", "("):
            errors.append("invalid sequence after number")
        elif kind == "operator" and prev not in ("number", ")"):
            errors.append("invalid sequence after operator")
        elif kind == "(":
            if prev in (None, "operator", "("):
                depth += 1
            else:
                errors.append("invalid sequence before '('")
        elif kind == ")":
            if prev not in ("number", ")"):
                errors.append("invalid sequence after ')'")
            elif depth:
                depth -= 1
            else:
                errors.append("unmatched closing parenthesis")
        prev = kind
    if depth:  # ours: the public scan never checks what is left open at the end
        errors.append("unmatched opening parenthesis")
    if prev == "operator":  # ours, likewise
        errors.append("invalid sequence at the end")
    return errors


def _numbers_errors(used, wanted):
    """The public code's number messages, in its order: numbers not on the cards (else numbers
    used too often), then card numbers left unused. Lists in order of first appearance."""
    used_n, wanted_n = Counter(used), Counter(wanted)
    invalid = [v for v in used_n if v not in wanted_n]
    overused = [v for v in used_n if used_n[v] > wanted_n[v]]
    unused = [v for v in wanted_n if wanted_n[v] > used_n[v]]
    errors = [f"you used invalid numbers: {invalid}"] if invalid else \
        [f"you used numbers: {overused} too many times"] if overused else []
    return errors + ([f"you didn't use numbers: {unused}"] if unused else [])


def _value_message(tokens, numbers, target):
    """Why a formula with the right numbers misses the target, in the public verifier's words: it
    names the longest prefix of the formula that starts one of the public solver's formulas for
    the hand (solver.public_solutions) as "partially correct"."""
    solutions, register = public_solutions(tuple(sorted(numbers)), target), ""
    for tok in tokens:
        if not any(s.startswith(register + tok) for s in solutions):
            return (f"{register} is partially correct but the full formula does not match any solution"
                    if register else "your formula does not match any solution")
        register += tok
    return "your formula does not match any solution"


def _verdict(outcome, *messages):
    return Verdict(outcome, REWARDS[outcome], ", ".join(messages) + ".")


def verify(response, cards, rule="id", vision=False, target=TARGET):
    """Score one answer against the true cards (the paper's reward table). Never raises on any text.

    As in the public code, the formula is the text before its first '=' (what follows is
    ignored), the "number" list of the answer is not checked (the numbers the formula uses are
    what counts: QS = 10 under rule ood is right iff the formula uses 12), and a formula that
    divides by zero simply misses the target.
    >>> verify('{"cards": ["A", "3", "Q", "7"], "number": [1, 3, 10, 7], "formula": "1+3*10-7=24"}',
    ...        ["AS", "3C", "QS", "7S"]).outcome
    'correct'
    """
    try:
        return judge(str(response)[:MAX_RESPONSE_CHARS], cards, rule, vision, target)
    except (ArithmeticError, RecursionError):  # what a formula's own arithmetic or nesting could raise;
        return _verdict("illegal_formula", "illegal characters")  # any other exception is a bug: raised


def judge(text, cards, rule="id", vision=False, target=TARGET):
    """The verdict on one answer, the first check it fails deciding, in the public verifier's order:
    (GP-VL only) the cards' ranks -> wrong_cards; the formula missing, too long, with a character
    that is not a digit or + - * / ( ), or out of order -> illegal_formula; the numbers it uses not
    exactly the cards' values -> wrong_numbers; its value not the target -> wrong_value; else correct."""
    if vision and not cards_match(recognized_cards(text), cards):  # GP-VL: checked first
        return Verdict("wrong_cards", REWARDS["wrong_cards"], "you recognized wrong cards")  # sic: no period
    formula = _field(text, "formula")
    if formula is None:  # the public reader then returns the string "None": illegal characters
        return _verdict("illegal_formula", "illegal characters")
    formula = formula.partition("=")[0]
    if len(formula) > MAX_FORMULA_CHARS:  # ours: bounds the work on a runaway answer
        return _verdict("illegal_formula", "your formula is too long")
    tokens = _TOKEN_RE.findall(formula)  # ours: spaces are allowed (the public scan rejects them)
    if any(t[0] not in _DIGITS and t not in _OPERATORS for t in tokens):
        return _verdict("illegal_formula", "illegal characters")
    errors = _syntax_errors(tokens)
    if errors:
        return _verdict("illegal_formula", *errors)
    used, wanted = [int(t) for t in tokens if t[0] in _DIGITS], [card_values(rule)[c] for c in cards]
    errors = _numbers_errors(used, wanted)
    if errors:  # an empty formula lands here too, as in the public code ("you didn't use ...")
        return _verdict("wrong_numbers", *errors)
    if _evaluate(tokens) != target:
        return _verdict("wrong_value", _value_message(tokens, wanted, target))
    return _verdict("correct", "Correct solution")


# ---------------------------------------------------------------------------------------------
# DEALING AND PROMPTS. The deal is the public code's (general_points_oneline.py,
# _generate_cards); the prompt is its `Q_GeneralPoint_EQN_L` / `_VL` (prompt_lib/prompts.py),
# the templates of the paper's Llama runs, word for word and whitespace for whitespace.
_SOLVABLE = {}  # (values, target) -> bool for targets other than 24


def deal(rng, rule="id", color="black", target=TARGET):
    """4 cards as the public code deals them: each rank uniform in A..K with replacement (under
    any rule but id, three uniform ranks and one J, Q or K, shuffled, so that the rule matters),
    each suit drawn from the colour's suits; redrawn until the numbers can make the target.
    So triples and quadruples occur, e.g. ['7S', '7C', '7S', '3C']. A table lookup per draw."""
    suits, values, table = COLORS[color], card_values(rule), solvable_table()
    need_face = face_values(rule) != FACE_VALUES["id"]
    for _ in range(100_000):  # ~1.4 draws on average for target 24
        ranks = [rng.randint(1, 13) for _ in range(3 if need_face else 4)]
        if need_face:
            ranks.append(rng.randint(11, 13))
            rng.shuffle(ranks)
        hand = [RANKS[r - 1] + rng.choice(suits) for r in ranks]
        nums = tuple(sorted(values[c] for c in hand))
        if target == TARGET:
            if table[nums] is not None:
                return hand
        elif _SOLVABLE.setdefault((nums, target), solve(nums, target) is not None):
            return hand
    raise ValueError(f"no solvable {rule}/{color} hand found for target {target}")


def plain_ranks(cards):
    """['AS', '3C', 'QS', '10C'] -> ['A', '3', 'Q', '10']: the cards as the paper writes them."""
    return [c[:-1] for c in cards]


# Kept quirks of the public text: the leading newline and trailing blank line, the rule
# sentence's own period before ", and" ("count as '10'., and"), the single-quoted formula
# placeholder and the trailing comma inside the braces. A line that ends in a backslash goes on in the
# next one, with no line break in the text.
_PROMPT_L = """
[Task Description]
You are an expert {target} points card game player. You will receive a set of 4 cards.
Note that {rule}, and each card must be used once.
Your goal is to output a formula that evaluates to {target} using numbers from the cards and operators such as \
'+', '-', '*', '/', '(', ')', and '='.

[Input]
Cards: {cards}

[Output]
{{
  "cards": [x, y, z, w], where {rule},
  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,
  "formula": 'an equation that equals {target}',
}}

"""
_PROMPT_VL = """
[Task Description]
You are an expert {target} points card game player. You are observing these four cards in the image.
Note that {rule}, and each card must be used once.
Your goal is to output a formula that evaluates to {target} using numbers from the cards and operators such as \
'+', '-', '*', '/', '(', ')', and '='.

[Output]
Your response should be a valid json file in the following format:
{{
  "cards": [x, y, z, w], where {rule},
  "number": [a, b, c, d], where a, b, c, and d are the numbers on the cards,
  "formula": 'an equation that equals {target}',
}}

"""


def prompt_text(cards, rule="id", vision=False, target=TARGET):
    """The user turn's text for a hand: GP-L lists the plain ranks (`Cards: ['A', '3', 'Q', '7']`),
    GP-VL refers to the image instead. The rule sentence ends with its own '.', as in the public
    code's face_card_msg."""
    template = _PROMPT_VL if vision else _PROMPT_L
    return template.format(target=target, rule=rule_sentence(rule) + ".", cards=plain_ranks(cards))


def answer_text(cards, rule="id", formula=None, target=TARGET):
    """The optimal answer, one compact JSON line, ranks only, "formula" last (the public ResponseEqn
    spreads it over lines with a trailing comma; one line is shorter for a tiny model):
    {"cards": ["A", "3", "Q", "7"], "number": [1, 3, 10, 7], "formula": "1+3*10-7=24"}"""
    numbers = [card_value(c, rule) for c in cards]
    formula = solve(numbers, target) if formula is None else formula
    return json.dumps({"cards": plain_ranks(cards), "number": numbers, "formula": f"{formula}={target}"})


def user_turn(text, image=False):
    """A user turn of the chat an env observes, its image part first: the env modules' message format."""
    return {"role": "user", "content": ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]}


def assistant_turn(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


# ---------------------------------------------------------------------------------------------
# THE ENVIRONMENT: one hand per episode, up to max_attempts answers (VIter), gymnasium's API.
class GeneralPointsEnv:
    """reset() deals a hand; step(answer) scores it. obs = {"messages": the chat so far, "image":
    PIL or None}; after a failed attempt it ends with the feedback turn, after the episode's
    end with the last answer. seed: int for training; eval_envs uses string seeds."""

    def __init__(self, rule="id", color="black", vision=False, max_attempts=MAX_ATTEMPTS, target=TARGET,
                 seed=None, image_size=None):
        face_values(rule)  # raises on an unknown rule
        if color not in COLORS or max_attempts < 1:
            raise ValueError(f"bad GeneralPoints settings: color={color!r} max_attempts={max_attempts}")
        self.rule, self.color, self.vision = rule, color, vision
        self.max_attempts, self.target = max_attempts, target
        self.image_size = image_size or IMAGE_SIZE  # None: the CPU default
        self.rng = random.Random(seed)
        self.cards, self.done = None, True

    def reset(self, seed=None):
        if seed is not None:
            self.rng = random.Random(seed)
        self.cards = self.deal()
        self.numbers = [card_value(c, self.rule) for c in self.cards]
        self.solution = solve(self.numbers, self.target)
        self.image = render(self.cards, self.image_size) if self.vision else None
        self.messages = [user_turn(prompt_text(self.cards, self.rule, self.vision, self.target), self.vision)]
        self.attempt, self.verdict, self.done, self.cards_correct, self.numbers_correct = 0, None, False, None, None
        return self._obs(), self._info()

    def deal(self):
        """The next hand (a subclass may deal from a fixed list, as tests/test_ppo.py does)."""
        return deal(self.rng, self.rule, self.color, self.target)

    def step(self, response):
        if self.done:
            raise RuntimeError("the episode is over (or never began): call reset()")
        v = self.verdict = verify(response, self.cards, self.rule, self.vision, self.target)
        self.cards_correct = cards_match(recognized_cards(response), self.cards)
        claimed = claimed_numbers(response)  # the rule read right: the hand's numbers, any order
        self.numbers_correct = claimed is not None and sorted(claimed) == sorted(self.numbers)
        self.attempt += 1
        self.messages = self.messages + [assistant_turn(response)]
        terminated = v.outcome == "correct"
        truncated = not terminated and self.attempt >= self.max_attempts
        reward = v.reward + (EXHAUSTED_PENALTY if truncated else 0.0)
        if not (terminated or truncated):  # the verifier's feedback turn (VIter)
            self.messages.append(user_turn(FEEDBACK.format(v.message)))
        self.done = terminated or truncated
        return self._obs(), reward, terminated, truncated, self._info()

    def oracle_response(self):
        """The correct answer for the current hand (the SFT target)."""
        return answer_text(self.cards, self.rule, self.solution, self.target)

    def _obs(self):
        return {"messages": list(self.messages), "image": self.image}

    def _info(self):
        v = self.verdict
        return {"cards": list(self.cards), "numbers": list(self.numbers), "rule": self.rule, "color": self.color,
                "verdict": v, "attempt": self.attempt, "solved": v is not None and v.outcome == "correct",
                "cards_correct": self.cards_correct, "numbers_correct": self.numbers_correct,
                "solution": f"{self.solution}={self.target}"}


def _split(split):
    if split not in SPLIT_VARIANTS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    return SPLIT_VARIANTS[split]


def make_env(split="id", vision=False, max_attempts=MAX_ATTEMPTS, seed=None, image_size=None):
    """A training / rollout env of a split: id = rule id + black, ood-rule = rule ood + black,
    ood-visual = rule id + red."""
    rule, color = _split(split)
    return GeneralPointsEnv(rule, color, vision, max_attempts, seed=seed, image_size=image_size)


def eval_envs(split, n=None, vision=False, max_attempts=MAX_ATTEMPTS, image_size=None, held_out=False):
    """The fixed evaluation hands of a split (n=None: the paper's 234): env i's first reset()
    deals hand i, the same in every call and process. Their seeds are strings
    'generalpoints-eval/<split>/<i>/<k>' (training seeds are ints, so the two never meet); k skips
    a hand already taken, so the n hands are distinct card sets.
    held_out: n other fixed hands, 'generalpoints-heldout/<split>/<i>/<k>', none of them a card set
    of the 234 evaluation hands: a check that a gain on the evaluation hands is not theirs alone."""
    rule, color = _split(split)
    seen = set(_eval_hands(split, "generalpoints-eval", N_EVAL, set())) if held_out else set()
    seeds = _eval_hands(split, "generalpoints-heldout" if held_out else "generalpoints-eval",
                        N_EVAL if n is None else n, seen)
    return [GeneralPointsEnv(rule, color, vision, max_attempts, seed=seed, image_size=image_size)
            for seed in seeds.values()]


def _eval_hands(split, prefix, n, seen) -> dict:
    """{hand: seed} of n distinct hands of a split, none in `seen`, from the seeds prefix/split/i/k."""
    rule, color = _split(split)
    hands = {}
    for i in range(n):
        for k in range(1000):
            seed = f"{prefix}/{split}/{i}/{k}"
            hand = tuple(sorted(deal(random.Random(seed), rule, color)))
            if hand not in seen and hand not in hands:
                break
        hands[hand] = seed
    return hands


# ---------------------------------------------------------------------------------------------
# ---- data: SFT conversations, the tokenizer corpus ----
# (the GP-VL card images are drawn in cards.py)
def sft_examples(n, rule="id", color="black", vision=False, seed=0, revise=0.0, image_size=None):
    """n SFT conversations ending in the optimal answer: {"messages": [...], "image": PIL or None}.
    revise = 0: single-turn pairs [user prompt, answer] (the paper's SFT data). revise > 0: that
    share of them first hold 1-4 failed attempts, each followed by the verifier's feedback turn
    (`with_revisions`): the multi-turn skill an instruct model brings to VIter, for the PPO
    warm start. The hands and answers of the rule's own split only."""
    env = GeneralPointsEnv(rule, color, vision, seed=seed, image_size=image_size)
    rng = random.Random(f"generalpoints-revise/{seed}")
    out = []
    for _ in range(n):
        env.reset()
        wrong = rng.randint(1, MAX_ATTEMPTS - 1) if revise and rng.random() < revise else 0
        out.append(with_revisions(env, wrong, rng))
    return out


def with_revisions(env, wrong, rng, other_rule=None):
    """The conversation of env's freshly dealt hand: `wrong` failed attempts, each a near miss of the
    right answer (answer_variants) or, given other_rule(rng), the answer under another rule, each
    followed by the verifier's feedback; then the correct answer. A wrong answer that happens to
    be right ends the revisions: the example is then the plain single-turn pair."""
    for _ in range(wrong):
        pool = answer_variants(env.cards, env.rule, rng)[1:]
        if not env.vision:
            pool.pop(3)  # no wrong_cards in GP-L: its cards are in the prompt
        if other_rule is not None:
            pool.append(answer_text(env.cards, other_rule(rng)))
        env.step(rng.choice(pool))
        if env.done:
            break
    messages = env.messages[:1] if env.done else env.messages
    return {"messages": messages + [assistant_turn(env.oracle_response())], "image": env.image}


def answer_variants(cards, rule="id", rng=None):
    """Realistic answers for a hand, one per outcome the verifier knows, most of them near
    misses of the right answer: [correct, wrong_value, wrong_numbers, illegal_formula,
    wrong_cards (under vision), no formula]. For the benchmark and the tokenizer corpus."""
    rng = rng or random.Random(0)
    numbers, ranks = [card_value(c, rule) for c in cards], plain_ranks(cards)
    formula = solve(numbers)
    swapped = formula.replace("+", "#").replace("-", "+").replace("#", "-") if "+" in formula or "-" in formula \
        else formula.replace("*", "+", 1)
    off = [v + 1 if i == 0 else v for i, v in enumerate(numbers)]
    misread = [RANKS[RANKS.index(ranks[0]) - 1]] + ranks[1:]  # the first card read one rank lower

    def answer(cs, nums, f):
        return json.dumps({"cards": cs, "number": nums, "formula": f})

    return [answer(ranks, numbers, f"{formula}=24"),
            answer(ranks, numbers, f"{swapped}=24"),
            answer(ranks, off, f"{solve(off) or '+'.join(map(str, off))}=24"),
            answer(ranks, numbers, rng.choice([f"{formula.replace('*', 'x')}=24", f"({formula}=24",
                                               f"{formula}**2=24"])),
            answer(misread, numbers, f"{formula}=24"),
            "The answer is " + "+".join(map(str, numbers)) + "."]


def tokenizer_corpus(n=2000):
    """Texts covering every variant (both rules, all colours, GP-L and GP-VL prompt forms), the
    answers, and feedback turns of every kind, for training the tiny model's tokenizer."""
    rng = random.Random("generalpoints-corpus")
    variants = [(r, c, v) for r in RULES for c in COLORS for v in (False, True)]
    texts = [FEEDBACK.format(m) for m in (
        "illegal characters.", "invalid sequence after number, invalid sequence after operator.",
        "invalid sequence before '(', invalid sequence after ')', unmatched closing parenthesis.",
        "unmatched opening parenthesis, invalid sequence at the end.", "your formula is too long.",
        "you recognized wrong cards", "you used invalid numbers: [11, 12], you didn't use numbers: [10, 13].",
        "you used numbers: [3] too many times, you didn't use numbers: [1].", "you didn't use numbers: [1, 7].",
        "your formula does not match any solution.")]
    for i in range(n):
        rule, color, vision = variants[i % len(variants)]
        cards = deal(rng, rule, color)
        answers = answer_variants(cards, rule, rng)
        texts += [prompt_text(cards, rule, vision), answers[0]]
        wrong = answers[1 + i % (len(answers) - 1)]
        verdict = verify(wrong, cards, rule, vision)
        texts += [wrong] + ([FEEDBACK.format(verdict.message)] if verdict.outcome != "correct" else [])
    return texts


if __name__ == "__main__":  # --play / --show: the terminal front end of both tasks is play.py
    import play
    play.gp_main()
