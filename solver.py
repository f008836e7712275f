"""
The 24 solvers of GeneralPoints (generalpoints.py): which numbers can make the target, and how.

Two solvers, for two jobs:
  * solve, ours: exact (fractions, so 6/(1-3/4) = 24 counts), one formula per hand. The deal
    asks it whether a hand can make 24, from a table of all 1820 multisets of 4 values in 1..13
    built once in ~0.3 s (solvable_table), and the SFT answers use its formula:
        solve([1, 3, 4, 6]) -> '6/(1-3/4)'
  * public_solutions, the public code's brute-force solver emulated: every formula it writes for
    a hand, which the verifier's wrong-value message needs (the longest prefix of the model's
    formula that starts one of them):
        public_solutions((3, 3, 8, 8)) -> ('8/(3-8/3)',)
`parse` is the formulas' grammar (+ - * / and brackets, the usual precedence, left to right),
shared by the verifier (a formula's exact value) and public_solutions (its shapes' trees).
"""

from fractions import Fraction
from functools import lru_cache
from itertools import combinations, combinations_with_replacement, permutations, product

import numpy as np

TARGET = 24  # the game's target (GeneralPoints: "make 24")


# ---------------------------------------------------------------------------------------------
# OUR SOLVER: which number multisets can make the target, with one formula each.
# reach(ms) = {value: formula} for every value the numbers of ms can make, built by splitting
# ms into two sub-multisets and combining their (memoised) reach sets with + - * /. For the
# full hand we never build the whole set: for each split and each value a of one side we look
# up the six values b that would give the target (b = t-a, a-t, a+t, t/a, t*a, a/t). With
# exact fractions, 6/(1-3/4) = 24 counts.
def _join(left, op, right):
    """Join two (text, precedence) expressions with minimal brackets; precedence 1 = + -, 2 = * /, 3 = atom."""
    (ls, lp), (rs, rp) = left, right
    if op in "+-":
        if op == "-" and rp == 1:
            rs = f"({rs})"
        return ls + op + rs, 1
    if lp == 1:
        ls = f"({ls})"
    if rp == 1 or (op == "/" and rp == 2):
        rs = f"({rs})"
    return ls + op + rs, 2


def _splits(ms):
    """Unordered splits of a sorted tuple into two non-empty sorted sub-tuples (each once)."""
    n, seen = len(ms), set()
    for k in range(0, n - 1):  # the first element always goes left, so each split appears once
        for rest in combinations(range(1, n), k):
            left = (ms[0],) + tuple(ms[i] for i in rest)
            if left in seen:
                continue
            seen.add(left)
            right = tuple(ms[i] for i in range(1, n) if i not in rest)
            yield left, right


@lru_cache(maxsize=4096)
def _reach(ms):
    """Every value the sorted tuple ms can make -> (formula, precedence)."""
    if len(ms) == 1:
        return {Fraction(ms[0]): (str(ms[0]), 3)}
    out = {}
    for left, right in _splits(ms):
        for a, ea in _reach(left).items():
            for b, eb in _reach(right).items():
                out.setdefault(a + b, _join(ea, "+", eb))
                out.setdefault(a * b, _join(ea, "*", eb))
                out.setdefault(a - b, _join(ea, "-", eb))
                out.setdefault(b - a, _join(eb, "-", ea))
                if b:
                    out.setdefault(a / b, _join(ea, "/", eb))
                if a:
                    out.setdefault(b / a, _join(eb, "/", ea))
    return out


def _find(ms, target):
    """A formula of the sorted tuple ms equal to target, or None, without building reach(ms)."""
    t = Fraction(target)
    if len(ms) == 1:
        return str(ms[0]) if ms[0] == t else None
    for left, right in _splits(ms):
        xs, ys = _reach(left), _reach(right)
        if len(xs) > len(ys):  # loop over the smaller side, look up in the larger
            xs, ys = ys, xs
        for x, ex in xs.items():
            # (y needed, op, x is the left operand) so that x op y == t or y op x == t
            needs = [(t - x, "+", True), (x - t, "-", True), (x + t, "-", False)]
            if x:
                needs += [(t / x, "*", True), (t * x, "/", False)]
                if t:
                    needs.append((x / t, "/", True))  # y = x/t is non-zero here
            for y, op, x_first in needs:
                ey = ys.get(y)
                if ey is not None:
                    return _join(ex, op, ey)[0] if x_first else _join(ey, op, ex)[0]
            if t == 0 and x == 0:  # 0 * anything
                return _join(ex, "*", next(iter(ys.values())))[0]
    return None


@lru_cache(maxsize=None)
def solvable_table():
    """Every multiset of 4 numbers in 1..13 (1820 of them, 1362 solvable) -> a formula making 24 or
    None, solved once (~0.3 s)."""
    return {ms: _find(ms, TARGET) for ms in combinations_with_replacement(range(1, 14), 4)}


def solve(numbers, target=TARGET):
    """A formula using each number once with + - * / and brackets that equals target, or None.

    solve([1, 3, 4, 6]) -> '6/(1-3/4)'. The formula has no '=<target>' suffix. Hands of 4 numbers
    in 1..13 with target 24 come from the cached table; anything else is searched directly.
    """
    ms = tuple(sorted(numbers))
    if len(ms) == 4 and target == TARGET and all(type(v) is int and 1 <= v <= 13 for v in ms):
        return solvable_table()[ms]
    return _find(ms, target) if ms else None


# ---------------------------------------------------------------------------------------------
# THE FORMULA GRAMMAR, shared with generalpoints.py's verifier.
def parse(tokens, leaf, node):
    """Recursive descent over a well-formed token list: expr := term (+|- term)*, term := factor
    (*|/ factor)*, factor := operand | ( expr ), combined left to right with node(op, left, right)
    over leaf(token). generalpoints._evaluate gives the exact value; _public_shapes builds trees."""
    pos = 0

    def chain(ops, operand):  # operand (op operand)*
        nonlocal pos
        value = operand()
        while pos < len(tokens) and tokens[pos] in ops:
            op = tokens[pos]
            pos += 1
            value = node(op, value, operand())
        return value

    def expr():
        return chain("+-", term)

    def term():
        return chain("*/", factor)

    def factor():
        nonlocal pos
        pos += 1
        if tokens[pos - 1] != "(":
            return leaf(tokens[pos - 1])
        value = expr()
        pos += 1  # the closing bracket
        return value

    return expr()


# ---------------------------------------------------------------------------------------------
# The public code's solutions of a hand: every formula its brute-force solver writes (digits in
# every order, every operator triple, 6 bracket placements and one double-bracket one; public
# code: general_points_oneline.py, solve). The wrong-value message names the longest prefix of
# the model's formula that starts one of them, as the public verifier does.
@lru_cache(maxsize=None)
def _public_shapes():
    """The public solver's 448 formula shapes, grouped by the shape of their expression tree
    (5 binary trees over a, b, c, d in order): {tree: (texts with {0}..{3} for the digits,
    operator codes of the tree's 3 nodes in post-order [n, 3])}. Built once, on first use."""
    placements = [()] + [(x, y) for x in range(0, 7, 2) for y in range(x + 4, 9, 2) if (x, y) != (0, 8)]
    placements.append((0, 4, 6, 10))  # the double-bracket case, (a o b) o (c o d)
    groups = {}
    for ops in product("+-*/", repeat=3):
        for brackets in placements:
            exp = ["a", ops[0], "b", ops[1], "c", ops[2], "d"]
            for point, bracket in zip(brackets, "()" * (len(brackets) // 2)):
                exp.insert(point, bracket)
            codes = []  # the tree's operators in post-order
            tree = parse(exp, "abcd".index, lambda op, left, right: codes.append("+-*/".index(op)) or (left, right))
            texts, opcodes = groups.setdefault(tree, ([], []))
            texts.append("".join("{%d}" % "abcd".index(t) if t in "abcd" else t for t in exp))
            opcodes.append(codes)
    return {tree: (texts, np.array(opcodes)) for tree, (texts, opcodes) in groups.items()}


def _tree_values(tree, opcodes, leaves, nodes):
    """Values of every shape of one tree for every digit order: [shapes, orders] (float64)."""
    if isinstance(tree, int):
        return leaves[tree]  # [1, orders]
    x = _tree_values(tree[0], opcodes, leaves, nodes)
    y = _tree_values(tree[1], opcodes, leaves, nodes)
    op = opcodes[:, next(nodes)][:, None]  # [shapes, 1], post-order like the codes
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(op == 0, x + y, np.where(op == 1, x - y, np.where(op == 2, x * y, x / y)))


@lru_cache(maxsize=2048)
def public_solutions(numbers, target=TARGET):
    """The public solver's formulas for a sorted tuple of 4 numbers, e.g. (1, 3, 7, 10) -> a
    tuple holding '1+3*10-7', '(1+3*10)-7'... (brackets only where its placements put them).
    All 448 shapes x 24 digit orders at once in float64; with 4 numbers up to 13 two different
    values differ by more than 1e-7, so |value - target| < 1e-9 is exact equality."""
    orders = sorted(set(permutations(numbers)))
    leaves = np.array(orders, dtype=np.float64).T[:, None, :]  # [4, 1, orders]
    out = []
    for tree, (texts, opcodes) in _public_shapes().items():
        values = _tree_values(tree, opcodes, leaves, iter(range(3)))  # [shapes, orders]
        for i, j in zip(*np.nonzero(np.abs(values - target) < 1e-9)):
            out.append(texts[i].format(*orders[j]))
    return tuple(sorted(out))
