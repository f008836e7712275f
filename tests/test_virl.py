"""V-IRL navigation (virl.py, SPEC §2): routes, instructions, the rail, the verifier, episodes,
street views, the evaluation splits and the CLI.

Run: python -m pytest tests/test_virl.py -q      (about 10 s on one core)
"""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import virl  # noqa: E402

SMALL = ROOT / "tests" / "data" / "route_infos_small.json"  # written by hand in the public format


@pytest.fixture(scope="module")
def small_routes():
    return virl.load_routes(SMALL)


def small_env(small_routes, route=0, actions="absolute", **kw):
    """An env on one hand-written route with a rail of start, 2 points per street, intersections."""
    return virl.NavigationEnv([small_routes[route]], actions, straight_line_length=2, drop_rate=0.0, seed=0, **kw)


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
    assert r2.init_heading == 0  # no init_heading in the file
    assert virl.instructions(r2) == [
        "First, turn slightly right to face northeast.",  # 0 -> 45: exactly +45
        "Move forward until you reach next intersection.",
        "Turn slightly left to face north.",
        "Move forward until you reach next intersection where Corner Books is on your left behind.",
        "Turn left to face west.",  # north -> west, wrapped (the public code says right)
        "Move forward until you reach destination where Harbor View Hotel is on your right."]
    assert virl.landmark_names(r1) == ["Blue Door Cafe", "Old Mill Museum"]


def test_hand_written_route_ground_truth(small_routes):
    rail = virl.build_rail(small_routes[0], straight_line_length=2, drop_rate=0.0)
    turn = "turn_direction({})".format
    turns = {0: (turn("north"), turn("left")), 3: (turn("northwest"), turn("slightly left")),
             6: (turn("northeast"), turn("right")), 9: (turn("northeast"), turn("slightly left")),
             12: ("stop()", "stop()")}
    assert len(rail) == 13  # start + 4 streets x (2 points + their end)
    for i, p in enumerate(rail):
        assert (p.action, p.relative) == turns.get(i, ("forward()", "forward()"))
        assert p.intersection == (i in (3, 6, 9))
    assert rail[0].observation == "No landmark nearby"
    assert rail[3].observation == "No landmark nearby; You observe an intersection"
    assert rail[6].observation == "Blue Door Cafe is on your right front; You observe an intersection"
    assert (rail[6].landmark, rail[6].side) == ("Blue Door Cafe", "right front")
    assert rail[12].observation == "Old Mill Museum is on your left"
    assert rail[4].instruction == virl.instructions(small_routes[0])[3] and "Blue Door Cafe" in rail[4].instruction
    assert rail[6].instruction == "Turn right to face northeast." and rail[12].instruction == rail[11].instruction
    assert [p.heading for p in rail[:4]] == [90, 0, 0, 0]  # heading on arrival
    assert virl.build_rail(small_routes[0], 2, drop_rate=1.0) == [rail[i] for i in (0, 3, 6, 9, 12)]


def test_route_files_round_trip(small_routes, tmp_path):
    virl.save_routes(small_routes, tmp_path / "small.json")
    assert virl.load_routes(tmp_path / "small.json") == small_routes
    generated = virl.generate_routes(5, "harbor", seed=4)
    virl.save_routes(generated, tmp_path / "gen.json")
    data = json.loads((tmp_path / "gen.json").read_text())
    assert data[1] == 5 and {"start_place", "dest_place", "route_results", "milestone_info"} <= set(data[0][0])
    assert virl.load_routes(tmp_path / "gen.json") == generated


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
    assert [virl.compass(h) for h in (0, 22, 23, 177, 270, 337, 338, 359)] == \
        ["north", "north", "northeast", "south", "west", "northwest", "north", "north"]
    assert virl.side(90, 90) == "front" and virl.side(90, 180) == "right" and virl.side(0, 225) == "left behind"
    assert virl.side(350, 30) == "right front" and virl.side(10, 300) == "left"


# --- the verifier --------------------------------------------------------------------------------
def test_verifier_outcomes(small_routes):
    rail, names = virl.build_rail(small_routes[0], 2, 0.0), virl.landmark_names(small_routes[0])
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
    assert virl.verify("", cafe, "absolute", names).message == 'your answer has no "action" from the action space'
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


# --- episodes ------------------------------------------------------------------------------------
def test_full_episode_correct_wrong_and_retry(small_routes):
    env = small_env(small_routes)
    obs, info = env.reset()
    assert info["verdict"] is None and info["position"] == 0 and info["n_positions"] == env.num_positions == 13
    assert info["gt_action"] == "turn_direction(north)" and info["clean"] and obs["image"] is None
    (user,) = obs["messages"]
    assert user["role"] == "user" and [c["type"] for c in user["content"]] == ["text"]
    text = user["content"][0]["text"]
    assert "1. First, turn left to face north.\n2. Move forward" in text and text.rstrip().endswith("action space}")
    assert "O_1: No landmark nearby\nA_1:" in text
    obs, r, term, trunc, info = env.step(env.oracle_response())
    assert (r, term, trunc, info["position"], info["attempt"], info["steps_correct"]) == (1.0, False, False, 1, 0, 1)
    history = "O_1: No landmark nearby\nA_1: turn_direction(north)\nO_2: No landmark nearby\nA_2:"
    assert history in obs["messages"][0]["content"][0]["text"]
    # a wrong action: -1, not executed, the conversation continues with the verifier's reason
    obs, r, term, trunc, info = env.step(answer("No landmark nearby", "stop()"))
    assert (r, term, trunc, info["position"], info["attempt"], info["clean"]) == (-1.0, False, False, 1, 1, False)
    assert info["verdict"].outcome == "wrong_action"
    assert [m["role"] for m in obs["messages"]] == ["user", "assistant", "user"]
    assert obs["messages"][2]["content"][0]["text"] == "You failed this trial because you made an incorrect action."
    obs, r, *_, info = env.step(env.oracle_response())  # second attempt right: moves, attempts start again
    assert (r, info["position"], info["attempt"], len(obs["messages"])) == (1.0, 2, 0, 1)
    env.step(env.oracle_response())
    obs, r, _, _, info = env.step(answer("No landmark nearby", "forward()"))  # at an intersection
    assert (r, info["verdict"].outcome) == (-1.5, "wrong_observation")
    assert obs["messages"][-1]["content"][0]["text"] == "You failed this trial because you are at an intersection."
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
    env = small_env(small_routes, route=1, actions="relative")
    env.reset()
    assert env.oracle_response() == answer("No landmark nearby", "turn_direction(slightly right)",
                                           "First, turn slightly right to face northeast.")
    _, r, term, trunc, info = env.step(answer("No landmark nearby", "turn_direction(northeast)"))  # absolute word
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
    assert "O_1: You observe an image of 4 views\nA_1:" in first[1]["text"]
    assert "[front, right / back, left]" in first[1]["text"]
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
    rail = virl.build_rail(small_routes[0], 2, 0.0)
    dest = rail[12]  # mid-block, street ahead and behind, the museum on the left
    grid = virl.render_grid(dest, "train", 448)
    views = [virl.render_view(dest, "train", v, 222) for v in range(4)]
    for v, (x, y) in enumerate(((0, 0), (226, 0), (0, 226), (226, 226))):
        assert grid.crop((x, y, x + 222, y + 222)).tobytes() == views[v].tobytes()
    sign = virl.STYLES["train"].sign_bg
    assert [count(v, sign) > 500 for v in views] == [False, False, False, True]  # the sign: left view only
    assert views[0].tobytes() != views[1].tobytes() != views[2].tobytes()
    for s, v in (("right", 1), ("right front", 1), ("front", 0), ("behind", 2), ("left behind", 3)):
        moved = virl.Position(**{**dest.__dict__, "side": s})
        signs = [count(virl.render_view(moved, "train", k, 222), sign) > 500 for k in range(4)]
        assert signs == [k == v for k in range(4)], s


def test_views_show_intersections():
    zebra = "#f4f4f4"
    route = virl.generate_routes(1, "desert", seed=2)[0]
    rail = virl.build_rail(route, drop_rate=0.0)
    for p in rail:
        views = [virl.render_view(p, "desert", v, 222) for v in range(4)]
        crossings = sum(count(v, zebra) > 100 for v in views)
        assert crossings >= 2 if p.intersection else crossings == 0  # zebra stripes on every street at a crossing


def test_city_styles_look_different():
    p = virl.build_rail(virl.generate_routes(1, "train", 0)[0])[0]
    images = {c: virl.render_grid(p, c, 224).tobytes() for c in virl.CITIES}
    assert len(set(images.values())) == len(virl.CITIES) == 10
    pools = [set(virl.STYLES[c].prefixes.split()) for c in virl.CITIES]
    assert all(not (a & b) for i, a in enumerate(pools) for b in pools[i + 1:])  # landmark names differ


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
    for city in virl.CITIES:
        c = virl.make_city(city)
        shops = {name: c.geo(p) for name, p in c.corner.values()} | {s[0]: c.geo(s[1]) for s in c.street}
        intersections = {c.geo(c.xy[n]) for n in c.nbrs if c.is_intersection(n)}
        for r in virl.route_pool(city)[:200]:
            points = [r.start] + r.geocodes
            assert 2 <= len(r.geocodes) - 1 <= 6 and r.start not in intersections
            assert all(g in intersections for g in r.geocodes[:-1]) and r.geocodes[-1] not in intersections
            prev = r.init_heading
            for k, (h, seen) in enumerate(zip(r.headings, r.landmarks)):
                assert h == round(virl.bearing(points[k], points[k + 1])) % 360 and r.directions[k] == virl.compass(h)
                turns[virl.relative_turn(prev, h)] += 1
                headings[r.directions[k]] += 1
                prev = h
                name, where = virl._name(seen)
                if name is None:
                    assert seen == virl.NO_LANDMARK and k < len(r.headings) - 1
                    continue
                assert virl.distance(r.geocodes[k], shops[name]) < virl.LANDMARK_RADIUS
                assert where == virl.side(h, virl.bearing(r.geocodes[k], shops[name]))
            assert r.destination == virl._name(r.landmarks[-1])[0]
    assert set(turns) == set(virl.TURNS) and min(turns.values()) > 50
    assert set(headings) == set(virl.COMPASS) and min(headings.values()) > 50


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
    assert len(visual) == 18 and Counter(e.routes[0].city for e in visual) == {c: 2 for c in virl.OOD_CITIES}
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
    assert "one of left, right, slightly left, slightly right" in env.messages[0]["content"][0]["text"]
    env = virl.make_env("ood-visual", vision=True, seed=3)
    obs, _ = env.reset()
    assert env.route.city in virl.OOD_CITIES and obs["image"].size == (448, 448)
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
    assert "You failed this trial because you are at an intersection." in text
    for city in virl.CITIES:  # every city's landmark names reach the tokenizer
        assert any(p in text for p in virl.STYLES[city].prefixes.split()), city


# --- CLI -----------------------------------------------------------------------------------------
def run_cli(*args, stdin=""):
    return subprocess.run([sys.executable, "virl.py", *args], cwd=ROOT, capture_output=True, text=True, input=stdin,
                          timeout=120)


def test_cli_show(tmp_path):
    out = run_cli("--show", str(tmp_path / "v"), "--city", "tropic", "--seed", "2")
    assert out.returncode == 0, out.stderr
    files = {p.name for p in (tmp_path / "v").iterdir()}
    assert {"map.png", "route_infos.json", "prompt.txt", "step_00.png"} <= files
    assert virl.load_routes(tmp_path / "v" / "route_infos.json")[0].city == "tropic"


def test_cli_play_and_errors(small_routes):
    out = run_cli("--play", "--seed", "1", stdin="turn_direction(nowhere)\n")
    assert out.returncode == 0 and "wrong_action" in out.stdout and "bye" in out.stdout
    for args in (("--show", "x", "--city", "atlantis"), ("--play", "--actions", "diagonal"), ("--seed", "3"),
                 ("--play", "--seed", "x")):
        bad = run_cli(*args)
        assert bad.returncode == 2 and "error:" in bad.stderr.strip().splitlines()[-1] and "Traceback" not in bad.stderr
    blocked = run_cli("--show", str(SMALL / "inside-a-file"))
    assert blocked.returncode == 1 and blocked.stderr.startswith("error:") and "Traceback" not in blocked.stderr
