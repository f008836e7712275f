"""V-IRL navigation (virl.py; the paper's Section 4.2, the public code's gym_virl env): routes,
instructions, the rail, the prompt and feedback texts, the verifier, episodes, street views, the
evaluation splits and the CLI.

Run: python -m pytest tests/test_virl.py -q      (about 10 s on one core)
"""
import dataclasses
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import streetview  # noqa: E402
import virl  # noqa: E402

SMALL = ROOT / "tests" / "data" / "route_infos_small.json"  # written by hand in the public format


@pytest.fixture(scope="module")
def small_routes():
    return streetview.load_routes(SMALL)


def small_env(small_routes, route=0, actions="absolute", **kw):
    """An env on one hand-written route with a rail of start, 2 points per street (candidates at 1/3,
    2/3 and 3/3 of it; the last one lies on the street's end and always goes), intersections."""
    return virl.NavigationEnv([small_routes[route]], actions, straight_line_length=3, drop_rate=0.0, seed=0, **kw)


def answer(observation, action, instruction=""):
    return json.dumps({"current observation": observation, "current instruction": instruction, "action": action})


# --- the public route format ------------------------------------------------------------------
def test_hand_written_route_instructions(small_routes):
    r1, r2 = small_routes
    assert virl.instructions(r1) == [
        "First, turn left to face north.",  # 90 -> 0
        "Move forward until you reach next intersection.",
        "Turn slightly left to face northwest.",  # 0 -> 315: exactly -45
        "Move forward until you reach next intersection where Blue Door Cafe is on your right front.",
        "Turn right to face northeast.",  # 315 -> 45: +90 across north (unwrapped -270 would say left)
        "Move forward until you reach next intersection.",
        "Turn slightly left to face northeast.",  # 45 -> 45: exactly 0
        "Move forward until you reach destination where Old Mill Museum is on your left."]
    assert r2.init_heading == 0  # no init_heading in the file: an env draws one per reset (see below)
    assert virl.instructions(r2) == [
        "First, turn slightly right to face northeast.",  # 0 -> 45: exactly +45
        "Move forward until you reach next intersection.",
        "Turn slightly left to face north.",
        "Move forward until you reach next intersection where Corner Books is on your left behind.",
        "Turn left to face west.",  # north -> west, wrapped (the public code says right)
        "Move forward until you reach destination where Harbor View Hotel is on your right."]
    assert virl.landmark_names(r1) == ["Blue Door Cafe", "Old Mill Museum"]
    one = dataclasses.replace(r1, headings=r1.headings[-1:], directions=["northeast"], landmarks=r1.landmarks[-1:])
    assert virl.instructions(one)[0] == "Turn slightly left to face northeast."  # the last block says "Turn"


def test_hand_written_route_ground_truth(small_routes):
    rail = virl.build_rail(small_routes[0], straight_line_length=3, drop_rate=0.0)
    turn = "turn_direction({})".format
    turns = {0: (turn("north"), turn("left")), 3: (turn("northwest"), turn("slightly left")),
             6: (turn("northeast"), turn("right")), 9: (turn("northeast"), turn("slightly left")),
             12: ("stop()", "stop()")}
    assert len(rail) == 13  # start + 4 streets x (2 points + their end)
    for i, p in enumerate(rail):
        assert (p.action, p.relative) == turns.get(i, ("forward()", "forward()"))
        assert p.intersection == (i in (3, 6, 9))
    # the public oracle observations: "<landmark text>; <intersection text>", the start and the
    # forward points "No landmarks nearby" (plural), a milestone without a shop "No landmark nearby"
    assert rail[0].observation == rail[1].observation == "No landmarks nearby; "
    assert rail[3].observation == "No landmark nearby; You observe an intersection"
    assert rail[6].observation == "Blue Door Cafe is on your right front; You observe an intersection"
    assert (rail[6].landmark, rail[6].side) == ("Blue Door Cafe", "right front")
    assert rail[12].observation == "Old Mill Museum is on your left; "
    assert rail[4].instruction == virl.instructions(small_routes[0])[3] and "Blue Door Cafe" in rail[4].instruction
    assert rail[6].instruction == "Turn right to face northeast." and rail[12].instruction == rail[11].instruction
    assert [p.heading for p in rail[:4]] == [90, 0, 0, 0]  # heading on arrival
    assert virl.build_rail(small_routes[0], 3, drop_rate=1.0) == [rail[i] for i in (0, 3, 6, 9, 12)]
    half = virl.build_rail(small_routes[0], 2, drop_rate=0.0)  # candidates at 1/2 and 2/2: one point per street
    assert len(half) == 9 and [p for p in half if p.action != "forward()"] == [rail[i] for i in (0, 3, 6, 9, 12)]


def test_route_files_round_trip(small_routes, tmp_path):
    streetview.save_routes(small_routes, tmp_path / "small.json")
    assert streetview.load_routes(tmp_path / "small.json") == small_routes
    generated = virl.generate_routes(5, "harbor", seed=4)
    streetview.save_routes(generated, tmp_path / "gen.json")
    data = json.loads((tmp_path / "gen.json").read_text())
    assert data[1] == 5 and {"start_place", "dest_place", "route_results", "milestone_info"} <= set(data[0][0])
    assert streetview.load_routes(tmp_path / "gen.json") == generated


def test_init_heading_zero_is_random_on_every_reset(small_routes):
    """The public env turns init_heading 0 into random.randint(0, 359) on every reset
    (navigation_environment.py, reset); the first turn word and the start heading follow it."""
    env = small_env(small_routes, route=1, actions="relative")
    seen = set()
    for _ in range(60):
        obs, info = env.reset()
        h = env.route.init_heading
        seen.add(h)
        assert 0 <= h <= 359 and env.rail[0].heading == h
        assert info["gt_action"] == f"turn_direction({virl.relative_turn(h, 45)})"  # the first street faces 45
        text = obs["messages"][0]["content"][0]["text"]
        assert f"\n1. First, turn {virl.relative_turn(h, 45)} to face northeast.\n" in text
    assert len(seen) > 40 and small_routes[1].init_heading == 0  # the route itself is left as read
    a, b = small_env(small_routes, route=1), small_env(small_routes, route=1)
    assert [(a.reset(), a.route.init_heading)[1] for _ in range(5)] == [(b.reset(), b.route.init_heading)[1]
                                                                        for _ in range(5)]  # seeded
    env = small_env(small_routes, route=0)  # a heading in the file is kept
    assert all(env.reset() and env.route is small_routes[0] for _ in range(3))
    pool = virl.route_pool("train")  # synthetic routes have 1..359: unchanged, no draw
    assert all(1 <= r.init_heading <= 359 for r in pool)
    env = virl.make_env("id", seed=5)
    env.reset()
    assert any(env.route is r for r in pool)


def streets(rail):
    """The forward points of each street of a rail: [[Position, ...] for street 1, 2, ...]."""
    out, current = [], []
    for p in rail[1:]:
        if p.action == "forward()":
            current.append(p)
        else:
            out.append(current)
            current = []
    return out


def test_forward_points_follow_the_public_rule():
    """Candidates at i/5 of a street (i = 1..5), each kept with probability 0.5, none within 8 m of
    either end (so never the 5th): about 2.0 forward points on a 100 m street, as the public rail
    with relocation: true (navigation_environment.py, _parse_instruction_and_rail)."""
    counts, lengths = [], []
    for k, route in enumerate(virl.route_pool("train")[:400]):
        rail = virl.build_rail(route, rng=random.Random(k))
        points = [route.start] + route.geocodes
        for j, street in enumerate(streets(rail)):
            a, b = points[j], points[j + 1]
            for p in street:
                assert min(streetview.distance(a, p.geocode), streetview.distance(b, p.geocode)) > virl.MIN_GAP_M
                f = streetview.distance(a, p.geocode) / streetview.distance(a, b)
                assert min(abs(f - i / 5) for i in range(1, 5)) < 1e-3  # at i/5, i < 5
            if 0 < j < len(points) - 2:  # between two intersections: about 100 m (diagonals 141 m)
                counts.append(len(street))
                lengths.append(streetview.distance(a, b))
    per_100m = 100 * sum(counts) / sum(lengths)
    assert len(counts) > 1000 and abs(sum(counts) / len(counts) - 2.0) < 0.1, sum(counts) / len(counts)
    assert 1.6 < per_100m < 2.0  # < 2 per 100 m only because diagonal streets are longer
    assert Counter(counts).keys() <= {0, 1, 2, 3, 4}
    # drop_rate 0: all 4 inner candidates of every full street, seeded draws otherwise
    full = streets(virl.build_rail(virl.route_pool("train")[0], drop_rate=0.0))
    assert all(len(st) == 4 for st in full[1:-1])
    r = virl.route_pool("train")[1]
    assert virl.build_rail(r, rng=random.Random(3)) == virl.build_rail(r, rng=random.Random(3))


# --- the prompt and feedback texts: the public code's, word for word ------------------------------
# The four user turns at position 5 of the second hand-written route (start, 2 forward points, an
# intersection, a forward point): Q_VIRL_L / Q_VIRL_VL (prompt_lib/prompts.py) with the action space
# of utils_rl.py set_str_action_space and the history of navigation_environment.py
# get_observation_action_sequence. Quirks kept: the leading newline, "stree tviews", the space after
# "executed. ", the line break after "You", "; " after an observation without an intersection, the
# space after the last "A_n:", the blank lines after the instruction list and the history.
# Ours (documented): V-IRL-VL's current step never adds "You observe an intersection".
L_ID = (
    "\n"
    "[Task Description]\n"
    "You are an expert in navigation. You will receive a sequence of instructions to follow. You\n"
    "are also provided with your observation and action history in text. Your goal is to first analyze "
    "the instruction and identify the next sentence to be executed. \n"
    "Then, you need to provide the action to be taken based on the current observation and instruction.\n"
    "\n"
    "[Instruction]\n"
    "1. First, turn slightly right to face northeast.\n"
    "2. Move forward until you reach next intersection.\n"
    "3. Turn slightly left to face north.\n"
    "4. Move forward until you reach next intersection where Corner Books is on your left behind.\n"
    "5. Turn left to face west.\n"
    "6. Move forward until you reach destination where Harbor View Hotel is on your right.\n"
    "\n"
    "\n"
    "[Action space]\n"
    '"forward()": indicates moving forward one step\n'
    '"turn_direction(x)": indicates adjust the ego agent direction towards x direction. x could be any '
    "following 8 directions ['north', 'northeast', 'east', 'southeast', 'south', 'southwest', 'west', "
    "'northwest']\n"
    '"stop()": indicates the navigation is finished.\n'
    "\n"
    "[Observations and actions sequence]\n"
    "O_1: No landmarks nearby; \n"
    "A_1: turn_direction(northeast)\n"
    "O_2: No landmarks nearby; \n"
    "A_2: forward()\n"
    "O_3: No landmarks nearby; \n"
    "A_3: forward()\n"
    "O_4: No landmark nearby; You observe an intersection\n"
    "A_4: turn_direction(north)\n"
    "O_5: No landmarks nearby; \n"
    "A_5: \n"
    "\n"
    "\n"
    "[Output]\n"
    "{\n"
    '  "current observation": latest observation from the observation sequence,\n'
    '  "current instruction": analyze the full instruction and identify the sentence to be executed,\n'
    '  "action": the action to be taken chosen from the action space,\n'
    "}\n"
)

def vision(prompt):
    """The V-IRL-VL prompt of the same route and position (Q_VIRL_VL): the street-view task line,
    the [Observation format] block, the current step as an image, the output's observation source."""
    observation_format = ("[Observation format]\nYou observe a 2x2 grid of streetview images with the following "
                          "headings:\n[front, right\n back, left]\nYou need to identify if any of the landmarks in "
                          "the instruction are visible in the street view grid.\n\n")
    return (prompt.replace("instructions to follow. You\n",
                           "instructions to follow while observing your surrounding stree tviews. You\n")
            .replace("\n[Action space]\n", "\n" + observation_format + "[Action space]\n")
            .replace("O_5: No landmarks nearby; \n", "O_5: You observe an image of 4 views; \n")
            .replace("latest observation from the observation sequence",
                     "latest observation from the street view grid"))


VL_ID = vision(L_ID)


def relative(prompt):
    """The rule-OOD prompt of the same route: the public relative action space and actions."""
    absolute = ("following 8 directions ['north', 'northeast', 'east', 'southeast', 'south', 'southwest', 'west', "
                "'northwest']")
    return (prompt.replace(absolute, "following ['left', 'right', 'slightly left', 'slightly right']")
            .replace("A_1: turn_direction(northeast)", "A_1: turn_direction(slightly right)")
            .replace("A_4: turn_direction(north)", "A_4: turn_direction(slightly left)"))


L_OOD, VL_OOD = relative(L_ID), relative(VL_ID)

WRONG_ACTION_FEEDBACK = (  # utils_rl.py step_rewards_virl: format_token is a plain string, so "{{" stays
    "You failed this trial because you make incorrect action. Please avoid this action and try again in the "
    "same format:\n"
    "[Output]\n"
    "{{\n"
    '  "current observation": latest observation from the streetview grid,\n'
    '  "current instruction": analyze the full instruction and identify the sentence to be executed,\n'
    '  "action": the action to be taken chosen from the action space,\n'
    "}}."
)


@pytest.mark.parametrize("expected, actions, vision", [
    (L_ID, "absolute", False), (L_OOD, "relative", False), (VL_ID, "absolute", True), (VL_OOD, "relative", True)])
def test_prompt_is_the_public_text(small_routes, expected, actions, vision):
    route = small_routes[1]  # init_heading 0 here; an env would draw a heading (instructions use 0)
    rail = virl.build_rail(route, straight_line_length=3, drop_rate=0.0)
    assert virl.prompt_text(virl.instructions(route), rail, 4, actions, vision) == expected


def test_prompt_in_an_episode(small_routes):
    """The env's first user turn and the prompt after two correct steps, both action spaces."""
    for actions in virl.ACTIONS:
        env = small_env(small_routes, actions=actions)
        obs, _ = env.reset()
        head, tail = obs["messages"][0]["content"][0]["text"].split("[Observations and actions sequence]\n")
        assert head.startswith("\n[Task Description]\n") and tail == (
            "O_1: No landmarks nearby; \nA_1: \n\n\n[Output]\n{\n"
            '  "current observation": latest observation from the observation sequence,\n'
            '  "current instruction": analyze the full instruction and identify the sentence to be executed,\n'
            '  "action": the action to be taken chosen from the action space,\n}\n')
        env.step(env.oracle_response())
        obs, *_ = env.step(env.oracle_response())
        first = "turn_direction(north)" if actions == "absolute" else "turn_direction(left)"
        assert (f"O_1: No landmarks nearby; \nA_1: {first}\nO_2: No landmarks nearby; \nA_2: forward()\n"
                "O_3: No landmarks nearby; \nA_3: \n\n\n[Output]") in obs["messages"][0]["content"][0]["text"]


def test_feedback_is_the_public_text(small_routes):
    rail, names = virl.build_rail(small_routes[0], 3, 0.0), virl.landmark_names(small_routes[0])
    cafe, mid = rail[6], rail[1]

    def feedback(text, p):
        return virl.FEEDBACK.format(virl.verify(text, p, "absolute", names).message)

    assert feedback(answer("Blue Door Cafe is on your right front; You observe an intersection", "stop()"),
                    cafe) == WRONG_ACTION_FEEDBACK
    def observation(reason):
        return WRONG_ACTION_FEEDBACK.replace("you make incorrect action. Please avoid this action",
                                             f"{reason}. Please avoid this observation")

    assert feedback(answer("You observe an intersection", "stop()"), mid) == \
        observation("you are not at any intersection")
    assert feedback(answer("Blue Door Cafe is on your right front", "stop()"), cafe) == \
        observation("you are at an intersection")  # the case the public code's bug P4 never reaches
    assert feedback(answer("Old Mill Museum is on your left; You observe an intersection", "stop()"), cafe) == \
        observation("you recognized wrong landmarks")  # ours: the public verifier has no landmark check
    assert virl.verify(answer("x", "turn_direction(north)"), rail[0]).message == "Correct action"


# --- angles -------------------------------------------------------------------------------------
@pytest.mark.parametrize("prev, nxt, turn", [
    (0, 314, "left"), (0, 315, "slightly left"), (0, 0, "slightly left"), (0, 1, "slightly right"),
    (0, 45, "slightly right"), (0, 46, "right"), (90, 44, "left"), (90, 45, "slightly left"),
    (90, 135, "slightly right"), (90, 136, "right"), (0, 270, "left"), (270, 0, "right"),
    (350, 10, "slightly right"), (10, 350, "slightly left"),
    (0, 180, "right"), (180, 0, "right"), (315, 45, "right"), (45, 315, "left")])
def test_relative_turn_boundaries(prev, nxt, turn):
    assert virl.relative_turn(prev, nxt) == turn


def test_compass_and_sides():
    assert [streetview.compass(h) for h in (0, 22, 23, 177, 270, 337, 338, 359)] == \
        ["north", "north", "northeast", "south", "west", "northwest", "north", "north"]
    side = streetview.side
    assert side(90, 90) == "front" and side(90, 180) == "right" and side(0, 225) == "left behind"
    assert streetview.side(350, 30) == "right front" and streetview.side(10, 300) == "left"


# --- the verifier --------------------------------------------------------------------------------
def test_verifier_outcomes(small_routes):
    rail, names = virl.build_rail(small_routes[0], 3, 0.0), virl.landmark_names(small_routes[0])
    cafe, mid = rail[6], rail[1]  # an intersection with a landmark; a point between intersections
    right = "Blue Door Cafe is on your right front; You observe an intersection"

    def outcome(text, p=cafe, actions="absolute"):
        v = virl.verify(text, p, actions, names)
        return v.outcome, v.reward

    assert outcome(answer(right, "turn_direction(northeast)")) == ("correct", 1.0)
    assert outcome(answer("whatever", "turn_direction(northeast)")) == ("correct", 1.0)  # the action decides first
    assert outcome(answer(right, "turn_direction(right)"), actions="relative") == ("correct", 1.0)
    assert outcome(answer(right, "turn_direction(northeast)"), actions="relative") == ("wrong_action", -1.0)
    assert outcome(answer(right, "forward()")) == ("wrong_action", -1.0)
    assert outcome(answer("Blue Door Cafe is on your right front", "forward()")) == ("wrong_observation", -1.5)
    for seen in ("No landmark nearby; You observe an intersection",  # misses the cafe
                 "Old Mill Museum is on your left; You observe an intersection",  # the wrong shop
                 "There is no intersection here; Blue Door Cafe on the right"):  # denies the crossing
        assert outcome(answer(seen, "forward()")) == ("wrong_observation", -1.5)
    assert outcome(answer("No landmark nearby", "turn_direction(east)"), mid) == ("wrong_action", -1.0)
    assert outcome(answer("You observe an intersection", "turn_direction(east)"), mid) == ("wrong_observation", -1.5)
    assert outcome(answer("Blue Door Cafe is on your right", "stop()"), mid) == ("wrong_observation", -1.5)
    assert outcome("I would go forward.") == ("wrong_action", -1.0)
    assert virl.verify("", cafe, "absolute", names).message == virl.MESSAGES["wrong_action"]  # no observation check
    for relative in (False, True):  # every action of each space is read back as itself
        assert all(virl.normalize_action(a) == a for a in virl.action_space(relative))
    # lenient reading: fences, prose around it, single quotes, trailing commas, spacing and case
    for text in ("```json\n" + answer(right, "turn_direction(northeast)") + "\n```",
                 "Sure! {'current observation': 'x', 'action': 'turn_direction(northeast)',} Done.",
                 '{\n  "current observation": "x",\n  "action": " Turn_Direction( \'NorthEast\' ) ",\n}',
                 '{"action": "turn_direction(northeast)", "current observation": {"nested": [1, 2]}}'):
        assert outcome(text) == ("correct", 1.0), text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.from_regex(r'\{.*"action"\s*:.*\}?', fullmatch=True))
def test_verifier_never_raises(text):
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0], 2, 0.0)[3]
    v = virl.verify(text, p, "relative", ("Alder Cafe",))
    assert v.outcome in virl.REWARDS and v.reward == virl.REWARDS[v.outcome]
    assert isinstance(virl.parse_answer(text), dict)


def test_verifier_deep_nesting_and_huge_input():
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0])[0]
    for text in ("[" * 100_000, '{"action": ' + "[" * 50_000 + "]" * 50_000 + "}", "{" * 10 + "x" * 1_000_000):
        assert virl.verify(text, p).outcome == "wrong_action"


def test_verifier_is_bounded_on_adversarial_answers():
    """A 100 KB answer full of "no" before a far-away "intersection" (a regex over the whole text
    took seconds); every verifier call reads at most MAX_RESPONSE_CHARS and runs in linear time."""
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0])[0]  # the start: not an intersection
    nos = "no " * 20_000 + ". intersection"
    texts = ['{"action": "stop()", "current observation": "' + nos + '", "pad": "' + "y" * 40_000 + '"}',
             json.dumps({"action": "stop()", "current observation": "no " * 33_000 + ". intersection"}),
             '{"action": "stop()", ' + "\"current observation\": '" * 4_000,
             "'action': \"" * 9_000, '{"action": "turn_direction(' + "a " * 50_000 + ')"}']
    assert all(len(t) > 60_000 for t in texts) and len(texts[0]) > 100_000
    for text in texts:
        t0 = time.perf_counter()
        virl.verify(text, p, "absolute", ("Alder Cafe",))
        assert time.perf_counter() - t0 < 2.0  # about 1 ms here; a generous bound for a busy machine
    v = virl.verify(texts[0], p, "absolute", ("Alder Cafe",))  # read past the cap-truncated JSON
    assert v.outcome == "wrong_observation" and v.message == virl.MESSAGES["not_at"]
    t0 = time.perf_counter()
    assert virl.says_intersection(nos) and not virl.says_intersection("no " * 20_000 + "intersection")
    assert not virl.says_intersection("no " * 33_000 + ". intersection")  # 100 KB: past the cap, not read
    assert not virl.says_intersection("There is no intersection here")
    assert virl.says_intersection("No shop; An intersection")
    assert time.perf_counter() - t0 < 2.0


def test_duplicated_keys_the_first_counts():
    """As GeneralPoints: when a key appears twice, the first one is read (json.loads alone takes the last)."""
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0])[0]
    right, wrong = p.action, "stop()"
    for text, outcome in (('{"action": "%s", "action": "%s"}' % (right, wrong), "correct"),
                          ('{"action": "%s", "action": "%s"}' % (wrong, right), "wrong_action"),
                          ('{"Action": "%s", "action ": "%s"}' % (right, wrong), "correct"),  # same key once read
                          ("{'action': '%s', 'action': '%s',} (not JSON)" % (right, wrong), "correct"),
                          ("{'action': '%s' 'action': '%s'" % (wrong, right), "wrong_action")):
        assert virl.verify(text, p).outcome == outcome, text
    assert virl.parse_answer('{"current observation": "a", "current observation": "b", "action": "x"}') == \
        {"current observation": "a", "action": "x"}


# --- episodes ------------------------------------------------------------------------------------
def test_full_episode_correct_wrong_and_retry(small_routes):
    env = small_env(small_routes)
    obs, info = env.reset()
    assert info["verdict"] is None and info["position"] == 0 and info["n_positions"] == env.num_positions == 13
    assert info["gt_action"] == "turn_direction(north)" and info["clean"] and obs["image"] is None
    (user,) = obs["messages"]
    assert user["role"] == "user" and [c["type"] for c in user["content"]] == ["text"]
    text = user["content"][0]["text"]
    assert text == virl.prompt_text(virl.instructions(small_routes[0]), env.rail, 0)
    assert "\n1. First, turn left to face north.\n2. Move forward" in text
    assert "O_1: No landmarks nearby; \nA_1: \n" in text
    obs, r, term, trunc, info = env.step(env.oracle_response())
    assert (r, term, trunc, info["position"], info["attempt"], info["steps_correct"]) == (1.0, False, False, 1, 0, 1)
    history = "O_1: No landmarks nearby; \nA_1: turn_direction(north)\nO_2: No landmarks nearby; \nA_2: \n"
    assert history in obs["messages"][0]["content"][0]["text"]
    # a wrong action: -1, not executed, the conversation continues with the verifier's reason
    obs, r, term, trunc, info = env.step(answer("No landmarks nearby; ", "stop()"))
    assert (r, term, trunc, info["position"], info["attempt"], info["clean"]) == (-1.0, False, False, 1, 1, False)
    assert info["verdict"].outcome == "wrong_action"
    assert [m["role"] for m in obs["messages"]] == ["user", "assistant", "user"]
    assert obs["messages"][2]["content"][0]["text"] == WRONG_ACTION_FEEDBACK
    obs, r, *_, info = env.step(env.oracle_response())  # second attempt right: moves, attempts start again
    assert (r, info["position"], info["attempt"], len(obs["messages"])) == (1.0, 2, 0, 1)
    env.step(env.oracle_response())
    obs, r, _, _, info = env.step(answer("No landmarks nearby; ", "forward()"))  # at an intersection
    assert (r, info["verdict"].outcome) == (-1.5, "wrong_observation")
    assert obs["messages"][-1]["content"][0]["text"] == WRONG_ACTION_FEEDBACK.replace(
        "you make incorrect action. Please avoid this action",
        "you are at an intersection. Please avoid this observation")
    total = 0
    while True:
        _, r, term, trunc, info = env.step(env.oracle_response())
        total += r
        if term or trunc:
            break
    assert term and not trunc and info["route_success"] and not info["clean"]
    assert info["steps_correct"] == info["n_positions"] == 13 and total == 10
    with pytest.raises(RuntimeError):
        env.step(env.oracle_response())


def test_attempts_exhausted_ends_the_route(small_routes):
    env = small_env(small_routes, route=0, actions="relative")
    env.reset()
    assert env.oracle_response() == answer("No landmarks nearby; ", "turn_direction(left)",
                                           "First, turn left to face north.")
    _, r, term, trunc, info = env.step(answer("No landmarks nearby; ", "turn_direction(north)"))  # absolute word
    assert (r, term, trunc) == (-1.0, False, False)
    obs, r, term, trunc, info = env.step(answer("You observe an intersection", "forward()"))
    assert (r, term, trunc, info["attempt"]) == (-1.5 - 1.0, False, True, 2)
    assert not info["route_success"] and info["steps_correct"] == 0
    assert [m["role"] for m in obs["messages"]] == ["user", "assistant", "user", "assistant"]
    env.reset()  # a new route starts clean
    assert env.attempt == 0 and env.clean


def test_oracle_answer_format_and_vision_obs(small_routes):
    env = small_env(small_routes, vision=True, image_size=224)
    obs, info = env.reset()
    first = obs["messages"][0]["content"]
    assert [c["type"] for c in first] == ["image", "text"] and obs["image"].size == (224, 224)
    assert "O_1: You observe an image of 4 views; \nA_1: \n" in first[1]["text"]
    assert "[front, right\n back, left]" in first[1]["text"]
    keys = list(json.loads(env.oracle_response()))
    assert keys == ["current observation", "current instruction", "action"]  # "action" last: the answer part
    assert env.oracle_response().index(f'"{virl.ANSWER_KEY}"') > env.oracle_response().index("current instruction")
    obs, *_ = env.step(answer("x", "forward()"))
    assert [c["type"] for c in obs["messages"][2]["content"]] == ["text"]  # the image only in the first turn


# --- street views --------------------------------------------------------------------------------
def count(img, color):
    rgb = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    return sum(n for n, c in img.getcolors(1 << 20) if c == rgb)


def test_grid_layout_front_is_top_left(small_routes):
    rail = virl.build_rail(small_routes[0], 3, 0.0)
    dest = rail[12]  # mid-block, street ahead and behind, the museum on the left
    grid = streetview.render_grid(dest, "train", 448)
    views = [streetview.render_view(dest, "train", v, 222) for v in range(4)]
    for v, (x, y) in enumerate(((0, 0), (226, 0), (0, 226), (226, 226))):
        assert grid.crop((x, y, x + 222, y + 222)).tobytes() == views[v].tobytes()
    sign = streetview.STYLES["train"].sign_bg
    assert [count(v, sign) > 500 for v in views] == [False, False, False, True]  # the sign: left view only
    assert views[0].tobytes() != views[1].tobytes() != views[2].tobytes()
    for s, v in (("right", 1), ("right front", 1), ("front", 0), ("behind", 2), ("left behind", 3)):
        moved = virl.Position(**{**dest.__dict__, "side": s})
        signs = [count(streetview.render_view(moved, "train", k, 222), sign) > 500 for k in range(4)]
        assert signs == [k == v for k in range(4)], s


def test_views_show_intersections():
    zebra = "#f4f4f4"
    route = virl.generate_routes(1, "desert", seed=2)[0]
    rail = virl.build_rail(route, drop_rate=0.0)
    for p in rail:
        views = [streetview.render_view(p, "desert", v, 222) for v in range(4)]
        crossings = sum(count(v, zebra) > 100 for v in views)
        assert crossings >= 2 if p.intersection else crossings == 0  # zebra stripes on every street at a crossing


def test_city_styles_look_different():
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0])[0]
    images = {c: streetview.render_grid(p, c, 224).tobytes() for c in streetview.CITIES}
    assert len(set(images.values())) == len(streetview.CITIES) == 10
    pools = [set(streetview.STYLES[c].prefixes.split()) for c in streetview.CITIES]
    assert all(not (a & b) for i, a in enumerate(pools) for b in pools[i + 1:])  # landmark names differ


def test_pretraining_looks_are_never_a_visual_ood_city():
    looks = streetview.LOOKS
    assert len(looks) == streetview.N_LOOKS == 24 and not set(looks) & set(streetview.CITIES)
    named_fonts = {s.font for s in streetview.STYLES.values()}
    for style in looks.values():
        assert style.font not in named_fonts and style.prefixes == streetview.STYLES["train"].prefixes
        assert {style.sky, style.road, style.sign_bg}.isdisjoint(  # no colour of a named city's
            {c for s in streetview.STYLES.values() for c in (s.sky, s.road, s.sign_bg)})
        bg, fg = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (style.sign_bg, style.sign_fg))
        assert abs(streetview._luma(bg) - streetview._luma(fg)) >= 0.35  # legible signs
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0])[0]
    grids = {c: streetview.render_grid(p, c, 224).tobytes() for c in ("train", *looks)}
    assert len(set(grids.values())) == 25
    with pytest.raises(ValueError, match="unknown city"):
        streetview.style_of("atlantis")


def test_observation_right_is_the_verifiers_observation_check_on_every_answer(small_routes):
    env = small_env(small_routes, vision=True)
    env.reset()
    firsts = []
    while not env.done:
        here = env.rail[env.pos]
        wrong = answer("No landmark nearby", "forward()" if here.action == "stop()" else "stop()")
        info = env.step(wrong)[4]  # a wrong action: scored, and its observation checked all the same
        assert info["verdict"].outcome != "correct"
        firsts.append(info["observation_right"])
        assert info["observation_right"] == (not here.intersection and here.landmark is None)
        assert env.step(env.oracle_response())[4]["observation_right"] is True
    assert True in firsts and False in firsts
    env.reset()  # at the start there is nothing to see, yet an answer without an observation did not look
    assert env.step('{"action": "forward()"}')[4]["observation_right"] is False


def test_image_size():
    """448 px by default; make_env / eval_envs take image_size, PAPER_GRID_SIZE is the public grid
    (two 1200 px views a side and a 5 px black line: navigation_environment.py, resolution 1200)."""
    assert virl.PAPER_GRID_SIZE == 2405 and streetview.GRID_SIZE == 448
    obs, _ = virl.make_env("id", vision=True, seed=0).reset()
    assert obs["image"].size == (448, 448)
    img = virl.make_env("id", vision=True, seed=0, image_size=virl.PAPER_GRID_SIZE).reset()[0]["image"]
    assert img.size == (2405, 2405)
    black = ((0, 0), (0, 0), (0, 0))
    assert img.crop((1200, 0, 1205, 2405)).getextrema() == black == img.crop((0, 1200, 2405, 1205)).getextrema()
    assert img.crop((1195, 0, 1200, 2405)).getextrema() != black != img.crop((1205, 0, 1210, 2405)).getextrema()
    (env,) = virl.eval_envs("ood-visual", n=1, vision=True, image_size=300)
    assert env.reset()[0]["image"].size == (300, 300)
    assert virl.sft_examples(1, vision=True, image_size=256)[0]["image"].size == (256, 256)


# --- cities and routes ---------------------------------------------------------------------------
def test_generation_is_reproducible():
    a, b = virl.generate_routes(20, "neon", seed=7), virl.generate_routes(20, "neon", seed=7)
    assert [r.raw for r in a] == [r.raw for r in b]
    assert [r.raw for r in a] != [r.raw for r in virl.generate_routes(20, "neon", seed=8)]
    code = "import virl; print(virl.generate_routes(3, 'glass', seed=5)[2].raw['milestone_info'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == virl.generate_routes(3, "glass", seed=5)[2].raw["milestone_info"].strip()


def test_generated_routes_are_valid():
    """Every landmark of an instruction exists in the city where it says; headings match geometry."""
    turns, headings = Counter(), Counter()
    for city in streetview.CITIES:
        c = streetview.make_city(city)
        shops = {name: c.geo(p) for name, p in c.corner.values()} | {s[0]: c.geo(s[1]) for s in c.street}
        intersections = {c.geo(c.xy[n]) for n in c.nbrs if c.is_intersection(n)}
        for r in virl.route_pool(city)[:200]:
            points = [r.start] + r.geocodes
            assert 2 <= len(r.geocodes) - 1 <= 6 and r.start not in intersections
            assert all(g in intersections for g in r.geocodes[:-1]) and r.geocodes[-1] not in intersections
            prev = r.init_heading
            for k, (h, seen) in enumerate(zip(r.headings, r.landmarks)):
                assert h == round(streetview.bearing(points[k], points[k + 1])) % 360
                assert r.directions[k] == streetview.compass(h)
                turns[virl.relative_turn(prev, h)] += 1
                headings[r.directions[k]] += 1
                prev = h
                name, where = virl._name(seen)
                if name is None:
                    assert seen == streetview.NO_LANDMARK and k < len(r.headings) - 1
                    continue
                assert streetview.distance(r.geocodes[k], shops[name]) < streetview.LANDMARK_RADIUS
                assert where == streetview.side(h, streetview.bearing(r.geocodes[k], shops[name]))
            assert r.destination == virl._name(r.landmarks[-1])[0]
    assert set(turns) == set(virl.TURNS) and min(turns.values()) > 50
    assert set(headings) == set(streetview.COMPASS) and min(headings.values()) > 50


# --- splits, SFT data, tokenizer corpus ----------------------------------------------------------
def test_eval_envs_are_fixed_and_held_out():
    first = [e.reset()[0]["messages"][0]["content"][0]["text"] for e in virl.eval_envs("id")]
    assert len(first) == 48 and len(set(first)) == 48
    assert first == [e.reset()[0]["messages"][0]["content"][0]["text"] for e in virl.eval_envs("id")]
    ids, rules = virl.eval_envs("id", n=5), virl.eval_envs("ood-rule", n=5)
    for a, b in zip(ids, rules):
        a.reset(), b.reset()
        assert a.route is b.route and a.rail == b.rail and (a.actions, b.actions) == ("absolute", "relative")
    visual = virl.eval_envs("ood-visual")
    assert len(visual) == 18 and Counter(e.routes[0].city for e in visual) == {c: 2 for c in streetview.OOD_CITIES}
    train = {(r.start, tuple(r.geocodes)) for r in virl.route_pool("train")}
    assert not train & {(r.start, tuple(r.geocodes)) for r in virl.eval_routes("id")}
    code = "import virl; e = virl.eval_envs('id', n=3)[2]; print(e.reset()[0]['messages'][0]['content'][0]['text'])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == first[2].strip()
    with pytest.raises(ValueError):
        virl.eval_envs("ood-colour")


def test_make_env_splits():
    env = virl.make_env("ood-rule", seed=3)
    env.reset()
    assert env.actions == "relative" and env.route.city == "train"
    assert "x could be any following ['left', 'right', 'slightly left', 'slightly right']\n" in \
        env.messages[0]["content"][0]["text"]
    env = virl.make_env("ood-visual", vision=True, seed=3)
    obs, _ = env.reset()
    assert env.route.city in streetview.OOD_CITIES and obs["image"].size == (448, 448)
    a, b = virl.make_env("id", seed=11), virl.make_env("id", seed=11)
    assert [a.reset()[0] == b.reset()[0] for _ in range(5)] == [True] * 5


def test_sft_examples_and_corpus():
    examples = virl.sft_examples(6, seed=1)
    assert examples == virl.sft_examples(6, seed=1) and len(examples) == 6
    for ex in examples:
        user, assistant = ex["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant" and ex["image"] is None
        assert list(json.loads(assistant["content"][0]["text"]))[-1] == "action"
    vl = virl.sft_examples(2, city="marble", actions="relative", vision=True, seed=0)
    assert vl[0]["image"].size == (448, 448) and vl[0]["messages"][0]["content"][0] == {"type": "image"}
    corpus = virl.tokenizer_corpus(400)
    text = "\n".join(corpus)
    assert len(corpus) == 400 and "You observe an image of 4 views" in text and "turn_direction(slightly" in text
    for key, message in virl.MESSAGES.items():  # every feedback turn, word for word
        assert (virl.FEEDBACK.format(message) in corpus) == (key != "correct"), key
    for city in streetview.CITIES:  # every city's landmark names reach the tokenizer
        assert any(p in text for p in streetview.STYLES[city].prefixes.split()), city


# --- CLI -----------------------------------------------------------------------------------------
def run_cli(*args, stdin=""):
    return subprocess.run([sys.executable, "virl.py", *args], cwd=ROOT, capture_output=True, text=True, input=stdin,
                          timeout=120)


def test_cli_show(tmp_path):
    out = run_cli("--show", str(tmp_path / "v"), "--city", "tropic", "--seed", "2")
    assert out.returncode == 0, out.stderr
    files = {p.name for p in (tmp_path / "v").iterdir()}
    assert {"map.png", "route_infos.json", "prompt.txt", "step_00.png"} <= files
    assert streetview.load_routes(tmp_path / "v" / "route_infos.json")[0].city == "tropic"


def test_cli_play_and_errors(small_routes):
    out = run_cli("--play", "--seed", "1", stdin="turn_direction(nowhere)\n")
    assert out.returncode == 0 and "wrong_action" in out.stdout and "bye" in out.stdout
    for args in (("--show", "x", "--city", "atlantis"), ("--play", "--actions", "diagonal"), ("--seed", "3"),
                 ("--play", "--seed", "x")):
        bad = run_cli(*args)
        assert bad.returncode == 2 and "error:" in bad.stderr.strip().splitlines()[-1] and "Traceback" not in bad.stderr
    blocked = run_cli("--show", str(SMALL / "inside-a-file"))
    assert blocked.returncode == 1 and blocked.stderr.startswith("error:") and "Traceback" not in blocked.stderr
