"""V-IRL navigation, the second task of "SFT Memorizes, RL Generalizes" (the paper's Section 4.2), offline.

An agent stands in a city and is given numbered route instructions, e.g.
    1. First, turn slightly left to face north.
    2. Move forward until you reach next intersection where Alder Cafe is on your right front.
It walks a "rail" of positions: the start, then for each street its forward points and its end
(an intersection, or the destination). At each it answers one JSON object
    {"current observation": ..., "current instruction": ..., "action": ...}
whose action is `turn_direction(<x>)` at the start and at intersections, `forward()` between,
and `stop()` at the destination; x is one of the 8 compass directions (absolute actions, the ID
split) or left / right / slightly left / slightly right (relative actions, the rule-OOD split).

The protocol is the public code's (gym_virl navigation_environment.py, utils_rl.py,
prompt_lib/prompts.py, rl/trainer/llama_trainer.py), its prompts word for word: Q_VIRL_L shows
the observation history as text, Q_VIRL_VL the current position as a 2x2 grid of street views.
Rewards per attempt: correct action +1 (the agent moves on); wrong observation -1.5; wrong action
-1. Two attempts per position (VIter), the second after "You failed this trial because
<reason>."; exhausting them adds -1 and fails the route. The verifier checks the action first,
then the observation (`verify_answer`). Evaluation: ID and rule-OOD on the same 48 routes,
visual-OOD on 2 routes in each of 9 other cities.

Where we differ from the public code, and why (details at the code named):
  * synthetic cities (streetview.py), as Street View cannot be downloaded; routes keep the format;
  * its bugs are not copied: the relative turn is wrapped into (-180, 180] (`relative_turn`);
    the grid is laid out as the prompt says (streetview.render_grid); the observation is checked
    against the true position, landmarks too (`observation_error`); V-IRL-VL's text does not
    give the intersection away (`VL_NOW`);
  * answers are read leniently (`parse_answer`, `normalize_action`): an exact match scores the
    format rather than the decision; one outcome per attempt (no third answer only to get -1);
  * forward points sit on the street (`build_rail`); fixed route pools, the same in every run,
    evaluation routes apart from training ones (`eval_routes`); 448 px grids on the CPU.

    python virl.py --show out/ [--city harbor] [--seed 3]   # route map + the views along the route
    python virl.py --play [--city train] [--actions relative] [--seed 3]   # navigate yourself
"""
import json
import random
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from generalpoints import Verdict, assistant_turn, user_turn
from streetview import CITIES, COMPASS, GRID_SIZE, NO_LANDMARK, OOD_CITIES, distance, generate_routes, render_grid, wrap

ANSWER_KEY = "action"  # the "answer" part of a response starts here (public configs: pattern_language ["action"])
MAX_ATTEMPTS = 2  # VIter: attempts per position (public configs: verify_iter 2)
SPLITS = ("id", "ood-rule", "ood-visual")
ACTIONS = ("absolute", "relative")
TURNS = ("left", "right", "slightly left", "slightly right")
# Observation texts, as the public env writes them (navigation_environment.py): a milestone block
# without a landmark says "No landmark nearby", the start and the forward points "No landmarks
# nearby" (plural); the oracle observation is "<landmark text>; <intersection text>", where the
# intersection text is empty at the start, the forward points and the destination.
NO_LANDMARKS = "No landmarks nearby"
AT_INTERSECTION = "You observe an intersection"
OBSERVATION_CHOICES = (f"{NO_LANDMARKS}; ", f"{NO_LANDMARK}; {AT_INTERSECTION}")  # for random stand-ins
REWARDS = {"correct": 1.0, "wrong_action": -1.0, "wrong_observation": -1.5}
# Feedback (public code: utils_rl.py, step_rewards_virl). format_token there is a plain string, so
# the model really sees "{{" and "}}"; the message is then joined as reason + "." (aggregate_fn).
OUTPUT_FORMAT = """
[Output]
{{
  "current observation": latest observation from the streetview grid,
  "current instruction": analyze the full instruction and identify the sentence to be executed,
  "action": the action to be taken chosen from the action space,
}}"""
MESSAGES = {"correct": "Correct action",
            "wrong_action": "you make incorrect action. Please avoid this action and try again in the same format:"
                            + OUTPUT_FORMAT,
            "not_at": "you are not at any intersection. Please avoid this observation and try again in the same "
                      "format:" + OUTPUT_FORMAT,
            "at": "you are at an intersection. Please avoid this observation and try again in the same format:"
                  + OUTPUT_FORMAT,
            # ours: the public verifier has no landmark check; worded like its other observation
            # messages and like GP-VL's "you recognized wrong cards"
            "landmarks": "you recognized wrong landmarks. Please avoid this observation and try again in the same "
                         "format:" + OUTPUT_FORMAT}
EXHAUSTED_PENALTY = -1.0  # added by the env to the last failed attempt
FEEDBACK = "You failed this trial because {}."  # llama_trainer.py's user turn, with aggregate_fn's "."
N_TRAIN_ROUTES, N_CITY_ROUTES, N_EVAL_ROUTES, N_EVAL_PER_CITY = 1000, 100, 48, 2
PAPER_GRID_SIZE = 2 * 1200 + 5  # the public grid: resolution 1200 per view + a 5-pixel line (navigation_environment.py)
MIN_GAP_M = 8.0  # metres: a forward point this close to a street's end is dropped (public code, relocation: true)


# ---------------------------------------------------------------------------------------------
# PROMPTS: the public Q_VIRL_L / Q_VIRL_VL (prompt_lib/prompts.py), word for word, quirks kept:
# the leading newline, "stree tviews", the space after "executed.", the line break after "You".
# A line that ends in a backslash goes on in the next one, with no line break in the text.
# ---------------------------------------------------------------------------------------------
Q_VIRL_L = """
[Task Description]
You are an expert in navigation. You will receive a sequence of instructions to follow. You
are also provided with your observation and action history in text. Your goal is to first analyze the \
instruction and identify the next sentence to be executed. \n\
Then, you need to provide the action to be taken based on the current observation and instruction.

[Instruction]
{instruction}

[Action space]
{action_space}

[Observations and actions sequence]
{obs_act_seq}

[Output]
{{
  "current observation": latest observation from the observation sequence,
  "current instruction": analyze the full instruction and identify the sentence to be executed,
  "action": the action to be taken chosen from the action space,
}}
"""
Q_VIRL_VL = """
[Task Description]
You are an expert in navigation. You will receive a sequence of instructions to follow while observing your \
surrounding stree tviews. You
are also provided with your observation and action history in text. Your goal is to first \
analyze the instruction and identify the next sentence to be executed. \n\
Then, you need to provide the action to be taken based on the current observation and instruction.

[Instruction]
{instruction}

[Observation format]
You observe a 2x2 grid of streetview images with the following headings:
[front, right
 back, left]
You need to identify if any of the landmarks in the instruction are visible in the street view grid.

[Action space]
{action_space}

[Observations and actions sequence]
{obs_act_seq}

[Output]
{{
  "current observation": latest observation from the street view grid,
  "current instruction": analyze the full instruction and identify the sentence to be executed,
  "action": the action to be taken chosen from the action space,
}}
"""
# public code: utils_rl.py, set_str_action_space (absolute_action true / false)
ACTION_SPACE_TEXT = {
    "absolute": """"forward()": indicates moving forward one step
"turn_direction(x)": indicates adjust the ego agent direction towards x direction. x could be any following 8 \
directions ['north', 'northeast', 'east', 'southeast', 'south', 'southwest', 'west', 'northwest']
"stop()": indicates the navigation is finished.""",
    "relative": """"forward()": indicates moving forward one step
"turn_direction(x)": indicates adjust the ego agent direction towards x direction. x could be any following \
['left', 'right', 'slightly left', 'slightly right']
"stop()": indicates the navigation is finished."""}
# ours: without the public "You observe an intersection", which gives the intersection away in text
VL_NOW = "You observe an image of 4 views; "


def history_text(rail, pos, actions="absolute", vision=False):
    r"""The [Observations and actions sequence] at rail position pos, as the public env writes it
    (navigation_environment.py, get_observation_action_sequence): "O_i: <observation>" and
    "A_i: <action>" for each passed position, then the current "O_n: ..." and "A_n: ", every line
    ending in a newline. At pos 1 with absolute actions:
        "O_1: No landmarks nearby; \nA_1: turn_direction(north)\nO_2: No landmarks nearby; \nA_2: \n"
    V-IRL-VL's current observation is VL_NOW."""
    lines = []
    for i, p in enumerate(rail[:pos]):
        lines += [f"O_{i + 1}: {p.observation}", f"A_{i + 1}: {action_in(p, actions)}"]
    lines += [f"O_{pos + 1}: {VL_NOW if vision else rail[pos].observation}", f"A_{pos + 1}: "]
    return "".join(line + "\n" for line in lines)


def prompt_text(sentences, rail, pos, actions="absolute", vision=False):
    r"""The user turn at rail position pos: Q_VIRL_L (Q_VIRL_VL with vision) filled in as the public
    trainer does (rl/trainer/llama_trainer.py): instruction "1. <sentence>\n2. <sentence>\n...",
    action_space ACTION_SPACE_TEXT, obs_act_seq history_text."""
    return (Q_VIRL_VL if vision else Q_VIRL_L).format(
        instruction="".join(f"{i + 1}. {s}\n" for i, s in enumerate(sentences)),
        action_space=ACTION_SPACE_TEXT[actions], obs_act_seq=history_text(rail, pos, actions, vision))


def answer_text(position, actions="absolute"):
    """The optimal answer, one JSON line with "action" last."""
    return json.dumps({"current observation": position.observation, "current instruction": position.instruction,
                       "action": action_in(position, actions)})


def action_in(position, actions="absolute"):
    """The ground-truth action at a position in an action space (absolute or relative)."""
    return position.action if actions == "absolute" else position.relative


# ---------------------------------------------------------------------------------------------
# THE VERIFIER, in the public code's order: (1) the action equals the ground truth -> correct, +1,
# whatever the observation says; (2) else the "current observation" must say "intersection" exactly
# when the agent is at one and name exactly the route's landmarks in view (none between
# intersections) -> else wrong_observation, -1.5; (3) else wrong_action, -1. An unreadable action is
# a wrong action, unchecked. It reads at most MAX_RESPONSE_CHARS, in linear time, and never raises.
# ---------------------------------------------------------------------------------------------
_KEY_RE = {k: re.compile(r"""(["'])%s\1\s*:\s*(["'])""" % k, re.I)
           for k in ("current observation", "current instruction", "action")}
_ACTION_RE = re.compile(r"(forward|stop|turn_direction)\s*\(\s*[\"']?([a-z ]*?)[\"']?\s*\)")
_NEGATION_RE = re.compile(r"\b(no|not)\b")
_CLAUSE_RE = re.compile(r"[.;,]")
MAX_RESPONSE_CHARS = 65536  # the verifier reads at most this much of a response (as GeneralPoints)


def _first_keys(pairs):
    """json.loads hook: a key given twice keeps its first value (GeneralPoints reads the first too)."""
    d = {}
    for k, v in pairs:
        d.setdefault(k, v)
    return d


def parse_answer(text):
    """A response -> {key: str}; lenient: the outermost {...}, trailing commas, single quotes.
    A key that appears twice counts once, the first time. Linear in the (capped) length."""
    text = str(text)[:MAX_RESPONSE_CHARS]
    a, b = text.find("{"), text.rfind("}")
    body = text[a:b + 1] if 0 <= a < b else text
    for candidate in (body, re.sub(r",\s*([}\]])", r"\1", body)):
        try:
            d = json.loads(candidate, object_pairs_hook=_first_keys)
        except (ValueError, RecursionError):
            continue
        if isinstance(d, dict):
            out = {}
            for k, v in d.items():
                out.setdefault(str(k).strip().lower(), v if isinstance(v, str) else json.dumps(v))
            return out
    out = {}  # not JSON: the first `"key": "value"` of each key, in either quotes
    for k, r in _KEY_RE.items():
        if m := r.search(body):
            end = body.find(m[2], m.end())
            if end >= 0:
                out[k] = body[m.end():end]
    return out


def normalize_action(text):
    """' Turn_Direction( "North" ) ' -> 'turn_direction(north)'; unreadable -> ''."""
    m = _ACTION_RE.fullmatch(re.sub(r"\s+", " ", str(text)[:MAX_RESPONSE_CHARS].strip().lower()))
    return f"{m[1]}({m[2].strip()})" if m else ""


def says_intersection(text):
    """Whether an observation says the agent is at an intersection: "intersection" appears, and no
    clause (text between . ; ,) puts "no" / "not" before it. "There is no intersection here" ->
    False. One pass over at most MAX_RESPONSE_CHARS characters (a regex over the whole text,
    r"\b(no|not)\b[^.;,]*intersection", took seconds on a long answer full of "no")."""
    t = str(text)[:MAX_RESPONSE_CHARS].lower()
    if "intersection" not in t:
        return False
    for clause in _CLAUSE_RE.split(t):
        i = clause.rfind("intersection")
        m = _NEGATION_RE.search(clause) if i > 0 else None
        if m and m.end() <= i:  # the clause's first negation comes before its last "intersection"
            return False
    return True


def verify(response, position, actions="absolute", names=()):
    """Score one answer at a rail position (order: action, then observation; see the docstring).
    The messages are the public code's (utils_rl.py, step_rewards_virl), the landmark one ours."""
    return verify_answer(parse_answer(response), position, actions, names)


def verify_answer(answer, position, actions="absolute", names=()):
    """verify() of an answer already parsed by parse_answer (the env parses each answer once)."""
    action = normalize_action(answer.get("action", ""))
    if action == (position.action if actions == "absolute" else position.relative):
        return Verdict("correct", REWARDS["correct"], MESSAGES["correct"])
    if not action:  # ours: no readable action is a wrong action, whatever the observation says
        return Verdict("wrong_action", REWARDS["wrong_action"], MESSAGES["wrong_action"])
    if wrong := observation_error(answer, position, names):
        return Verdict("wrong_observation", REWARDS["wrong_observation"], MESSAGES[wrong])
    return Verdict("wrong_action", REWARDS["wrong_action"], MESSAGES["wrong_action"])


def observation_error(answer, position, names=()):
    """What is wrong with a parsed answer's "current observation" at a position: "at" (it misses
    the intersection the agent is at), "not_at" (it sees one that is not there), "landmarks" (the
    route's landmarks it names are not the one in view), or None when it is right. Against the true
    position: the public code compares with the landmark-only field, so its "at" never fires (a bug);
    the landmark check is ours."""
    seen = answer.get("current observation", "")[:MAX_RESPONSE_CHARS].lower()
    if says_intersection(seen) != position.intersection:
        return "at" if position.intersection else "not_at"
    if {n for n in names if n.lower() in seen} != ({position.landmark} if position.landmark else set()):
        return "landmarks"
    return None


def action_space(relative=False):
    """Every valid action string of a split's action space."""
    return ["forward()", "stop()"] + [f"turn_direction({x})" for x in (TURNS if relative else COMPASS)]


# ---------------------------------------------------------------------------------------------
# THE ENVIRONMENT: one route per episode, up to max_attempts answers per position (VIter)
# ---------------------------------------------------------------------------------------------
class NavigationEnv:
    """reset() starts a route; step(answer) scores it. obs = {"messages": chat, "image": PIL or None}.

    info: gt_action (at the returned position), verdict, attempt (used here), clean (no failed
    attempt on this route yet), position / n_positions, steps_correct (positions passed),
    route_success (True when the route just ended at the destination), observation,
    instruction, city, frame_right (the answer just scored was at a turn: whether its action is a
    turn of this action space, right or wrong; None elsewhere), observation_right (the answer just
    scored has a "current observation" that says "intersection" exactly at an intersection and
    names the landmark in view, no other). Per-step accuracy of a route = steps_correct /
    n_positions at its end.
    """

    def __init__(self, routes, actions="absolute", vision=False, max_attempts=MAX_ATTEMPTS,
                 straight_line_length=5, drop_rate=0.5, seed=None, image_size=None):
        if not routes or actions not in ACTIONS or max_attempts < 1:
            raise ValueError(f"bad V-IRL settings: {len(routes)} routes, actions={actions!r}, "
                             f"max_attempts={max_attempts}")
        self.routes, self.actions, self.vision, self.max_attempts = list(routes), actions, vision, max_attempts
        self.straight_line_length, self.drop_rate = straight_line_length, drop_rate
        self.image_size = image_size or GRID_SIZE  # None: the CPU default
        self.look = None  # draw the street views in this style instead of the route's city's (experiments/style_gap.py)
        self.rng = random.Random(seed)
        self.rail, self.done = None, True

    @property
    def relative(self):
        return self.actions == "relative"

    @property
    def num_positions(self):
        """Rail positions of the current route (the denominator of per-step accuracy)."""
        return len(self.rail)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = random.Random(seed)
        self.route = start_heading(self.routes[self.rng.randrange(len(self.routes))], self.rng)
        self.rail = build_rail(self.route, self.straight_line_length, self.drop_rate, self.rng)
        self.names, self.sentences = landmark_names(self.route), instructions(self.route)
        self.verdict, self.clean, self.done, self.steps_correct, self.frame_right = None, True, False, 0, None
        self.observation_right = None
        self._goto(0)
        return self._obs(), self._info(False)

    def _goto(self, pos):
        self.pos, self.attempt, self.image = pos, 0, None
        self.messages = [user_turn(prompt_text(self.sentences, self.rail, pos, self.actions, self.vision), self.vision)]

    def step(self, response):
        if self.done:
            raise RuntimeError("the route is over (or never began): call reset()")
        here = self.rail[self.pos]
        answer = parse_answer(response)
        v = self.verdict = verify_answer(answer, here, self.actions, self.names)
        # the mechanism metric (experiments/README.md): at a turn, is the answer one of this space's turns?
        self.frame_right = None
        if here.action.startswith("turn_direction("):
            self.frame_right = normalize_action(answer.get("action", "")) in action_space(self.relative)[2:]
        # V-IRL-VL's mechanism metric (experiments/README.md): the street views were read right, whatever the action
        self.observation_right = "current observation" in answer and observation_error(answer, here, self.names) is None
        self.attempt += 1
        reward, terminated, truncated = v.reward, False, False
        if v.outcome == "correct":
            self.steps_correct += 1
            if here.action == "stop()":
                terminated = True
            else:
                self._goto(self.pos + 1)  # the agent moves; attempts start again
        else:
            self.clean = False
            self.messages = self.messages + [assistant_turn(response)]
            if self.attempt >= self.max_attempts:
                reward, truncated = reward + EXHAUSTED_PENALTY, True
            else:
                self.messages.append(user_turn(FEEDBACK.format(v.message)))
        self.done = terminated or truncated
        return self._obs(), reward, terminated, truncated, self._info(terminated)

    def oracle_response(self):
        """The correct answer at the current position (the SFT target)."""
        return answer_text(self.rail[self.pos], self.actions)

    def draw(self, position):
        """The street-view grid at a rail position, in the route's city's style (or self.look's)."""
        return render_grid(position, self.look or self.route.city, self.image_size)

    def _obs(self):
        if self.vision and self.image is None:
            self.image = self.draw(self.rail[self.pos])
        return {"messages": list(self.messages), "image": self.image}

    def _info(self, success):
        p = self.rail[self.pos]
        return {"gt_action": p.action if self.actions == "absolute" else p.relative, "verdict": self.verdict,
                "attempt": self.attempt, "clean": self.clean, "position": self.pos, "n_positions": len(self.rail),
                "steps_correct": self.steps_correct, "route_success": success, "observation": p.observation,
                "instruction": p.instruction, "city": self.route.city, "frame_right": self.frame_right,
                "observation_right": self.observation_right}


# ---------------------------------------------------------------------------------------------
# SPLITS, SFT DATA, TOKENIZER CORPUS
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def route_pool(city="train"):
    """The training routes of a city (seed 0): 1000 in the training city, 100 in the others."""
    return tuple(generate_routes(N_TRAIN_ROUTES if city == "train" else N_CITY_ROUTES, city, seed=0))


@lru_cache(maxsize=None)
def eval_routes(split):
    """The fixed evaluation routes: seed 1 of each city, leaving out any route of its training pool
    (the public code draws its 48 with replacement from its route file)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    if split == "ood-rule":  # the ID routes, with relative actions
        return eval_routes("id")
    cities, per_city = (("train",), N_EVAL_ROUTES) if split == "id" else (OOD_CITIES, N_EVAL_PER_CITY)
    out = []
    for city in cities:
        train = {(r.start, tuple(r.geocodes)) for r in route_pool(city)}
        fresh = [r for r in generate_routes(2 * per_city, city, seed=1) if (r.start, tuple(r.geocodes)) not in train]
        out += fresh[:per_city]
    return tuple(out)


def make_env(split="id", vision=False, max_attempts=MAX_ATTEMPTS, seed=None, image_size=None):
    """A training / rollout env: training-city routes (absolute actions for id, relative for
    ood-rule); ood-visual: the routes of the 9 other cities, absolute actions. image_size: the
    street-view grid's side in pixels (PAPER_GRID_SIZE for the public 2 x 1200 px grid)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    routes = [r for c in OOD_CITIES for r in route_pool(c)] if split == "ood-visual" else route_pool("train")
    return NavigationEnv(routes, "relative" if split == "ood-rule" else "absolute", vision, max_attempts, seed=seed,
                         image_size=image_size)


def eval_envs(split, n=None, vision=False, max_attempts=MAX_ATTEMPTS, image_size=None):
    """The fixed evaluation routes of a split, one env each: env i's first reset() starts route i
    with the same rail in every call and process (ID and rule-OOD share routes and rails).
    image_size as in make_env."""
    routes = eval_routes(split)[:n]
    actions = "relative" if split == "ood-rule" else "absolute"
    return [NavigationEnv([r], actions, vision, max_attempts, seed=f"virl-eval/{i}", image_size=image_size)
            for i, r in enumerate(routes)]


def sft_examples(n, city="train", actions="absolute", vision=False, seed=0, image_size=None):
    """n optimal single-turn pairs, each a random position of a random training route:
    {"messages": [user prompt, assistant answer], "image": PIL or None} (image_size as in make_env)."""
    rng, pool, out = random.Random(seed), route_pool(city), []
    for _ in range(n):
        route = pool[rng.randrange(len(pool))]
        rail = build_rail(route, rng=rng)
        pos = rng.randrange(len(rail))
        prompt = user_turn(prompt_text(instructions(route), rail, pos, actions, vision), vision)
        out.append({"messages": [prompt, assistant_turn(answer_text(rail[pos], actions))],
                    "image": render_grid(rail[pos], route.city, image_size or GRID_SIZE) if vision else None})
    return out


def tokenizer_corpus(n=2000, actions=ACTIONS):
    """Prompts (L and VL forms, the given action spaces, every city style), answers and feedback turns."""
    rng = random.Random("virl-corpus")
    texts = [FEEDBACK.format(m) for k, m in MESSAGES.items() if k != "correct"]
    variants = [(c, a, v) for c in CITIES for a in actions for v in (False, True)]
    i = 0
    while len(texts) < n:
        city, actions, vision = variants[i % len(variants)]
        i += 1
        route = rng.choice(route_pool(city))
        rail = build_rail(route, rng=rng)
        pos = rng.randrange(len(rail))
        texts += [prompt_text(instructions(route), rail, pos, actions, vision), answer_text(rail[pos], actions)]
    return texts[:n]


# ---------------------------------------------------------------------------------------------
# ROUTES: instructions and the ground-truth rail. The routes themselves (the public file format,
# streetview.Route) and the synthetic cities they are sampled from are in streetview.py.
# ---------------------------------------------------------------------------------------------
def relative_turn(prev_heading, next_heading):
    """Below -45 left, above 45 right, [-45, 0] slightly left, (0, 45] slightly right (public code:
    navigation_environment.py, _parse_instruction_and_rail), on the wrapped difference (ours: the
    public code does not wrap, so north -> west says "right", a bug in about 22% of the turn words)."""
    d = wrap(next_heading - prev_heading)
    if d < -45:
        return "left"
    if d > 45:
        return "right"
    return "slightly left" if d <= 0 else "slightly right"


def _name(seen):
    """'Alder Cafe is on your right front' -> ('Alder Cafe', 'right front'); no landmark -> (None, None)."""
    m = re.fullmatch(r"(.+) is on your (.+)", seen)
    return (m[1], m[2]) if m else (None, None)


def landmark_names(route):
    """The shops a route's instructions name (the verifier's vocabulary of landmarks)."""
    return list(dict.fromkeys([n for n in (_name(s)[0] for s in route.landmarks) if n] + [route.destination]))


def instructions(route):
    """The instruction sentences (without their numbers), two per milestone block, as the public
    code words them (navigation_environment.py, _parse_instruction_and_rail): the last block
    always says "Turn", even when it is also the first. A turn names both words, relative and
    compass ("Turn left to face west."), so either action space can follow it."""
    out, prev = [], route.init_heading
    last = len(route.headings) - 1
    for k, (h, word, seen) in enumerate(zip(route.headings, route.directions, route.landmarks)):
        out.append(f"{'First, turn' if 0 == k < last else 'Turn'} {relative_turn(prev, h)} to face {word}.")
        prev = h
        if k == last:
            out.append(f"Move forward until you reach destination where {seen}.")
        else:
            where = "." if seen == NO_LANDMARK else f" where {seen}."
            out.append(f"Move forward until you reach next intersection{where}")
    return out


@dataclass(frozen=True)
class Position:
    """One point of the rail, with everything the verifier and the renderer need."""
    geocode: tuple
    heading: int  # the agent's heading on arrival
    action: str  # ground truth, absolute action space
    relative: str  # ground truth, relative action space
    observation: str  # the oracle observation text
    intersection: bool
    landmark: str | None  # shop in view (name) and its side
    side: str | None
    roads: tuple  # street headings here
    instruction: str


def build_rail(route, straight_line_length=5, drop_rate=0.5, rng=None):
    """The rail of positions, as the public code lays it (navigation_environment.py,
    _parse_instruction_and_rail, with relocation: true as in every public config): the start,
    then for each street longer than 5 m its forward() points and its end. The candidates lie at
    i / straight_line_length of the street (i = 1 .. straight_line_length); each is dropped with
    probability drop_rate, and any within MIN_GAP_M of either end is dropped as well, so the last
    one (on the end itself) never stays. A 100 m street keeps 4 x 0.5 = 2.0 points on average.

    Observations are the public oracle texts: "No landmarks nearby; " at the start and the
    forward points, "<landmarks>; You observe an intersection" at an intersection, "<landmarks>; "
    at the destination. The start heading is the route's init_heading (see `start_heading`).
    Forward points sit on the street (the public code snaps them to the nearest panorama)."""
    rng = rng or random.Random(0)
    sent = instructions(route)
    points = [route.start] + route.geocodes
    heads = [route.init_heading] + route.headings
    last = len(points) - 1
    rail = [_end_position(route, sent, heads, 0, last)]
    for k in range(1, len(points)):
        prev, geo = points[k - 1], points[k]
        if distance(prev, geo) > 5:
            for i in range(1, straight_line_length + 1):
                if rng.random() < drop_rate:  # drawn for every candidate, as the public code does
                    continue
                f = i / straight_line_length
                p = (prev[0] + f * (geo[0] - prev[0]), prev[1] + f * (geo[1] - prev[1]))
                if distance(prev, p) <= MIN_GAP_M or distance(geo, p) <= MIN_GAP_M:
                    continue
                rail.append(Position(p, heads[k], "forward()", "forward()", f"{NO_LANDMARKS}; ", False, None, None,
                                     (heads[k], (heads[k] + 180) % 360), sent[2 * k - 1]))
        rail.append(_end_position(route, sent, heads, k, last))
    return rail


def _end_position(route, sent, heads, k, last):
    """Point k of [start] + route.geocodes: the start (k = 0), an intersection or the destination."""
    seen = NO_LANDMARKS if k == 0 else route.landmarks[k - 1]
    inter = 0 < k < last
    name, where = _name(seen)
    if k < last:
        action = f"turn_direction({route.directions[k]})"
        rel = f"turn_direction({relative_turn(heads[k], heads[k + 1])})"
    else:
        action = rel = "stop()"
    return Position(route.geocodes[k - 1] if k else route.start, heads[k], action, rel,
                    f"{seen}; {AT_INTERSECTION if inter else ''}", inter, name, where, tuple(route.roads[k]),
                    sent[2 * k] if k < last else sent[-1])


def start_heading(route, rng):
    """The route as one episode starts it: init_heading 0 (unknown, in the public format) becomes a
    random heading in 0..359, drawn anew on every reset (public code: navigation_environment.py,
    reset). Our synthetic routes have 1..359 and are returned unchanged."""
    if route.init_heading != 0:
        return route
    return replace(route, init_heading=rng.randint(0, 359))


if __name__ == "__main__":  # --show / --play: the terminal front end of both tasks is play.py
    import play
    play.virl_main()
