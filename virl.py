"""V-IRL navigation, the second task of "SFT Memorizes, RL Generalizes" (the paper's Section 4.2), offline.

The task. An agent stands in a city and is given numbered route instructions, e.g.
    1. First, turn slightly left to face north.
    2. Move forward until you reach next intersection where Alder Cafe is on your right front.
    3. Turn right to face east.
    4. Move forward until you reach destination where Quill Books is on your left.
It walks a "rail" of positions: the start, then for each street its forward points and its end
(an intersection, or the destination). At every position it answers one JSON object
    {"current observation": ..., "current instruction": ..., "action": ...}
whose action must be `turn_direction(<x>)` at the start and at intersections, `forward()`
between, and `stop()` at the destination. The action space is absolute (x = one of the 8
compass directions; the ID split) or relative (x = left / right / slightly left / slightly
right; the rule-OOD split); the instructions always carry both words.

The protocol follows the public code (gym_virl navigation_environment.py, utils_rl.py,
prompt_lib/prompts.py, rl/trainer/llama_trainer.py). The user turn is the public Q_VIRL_L /
Q_VIRL_VL text word for word (`prompt_text`): V-IRL-L sees its observation history as text
("O_2: Alder Cafe is on your right front; You observe an intersection" / "A_2:
turn_direction(east)"); V-IRL-VL sees the current position as a 2x2 grid of street views.
Rewards per attempt: correct action +1 (the agent moves, or the route ends at the destination);
wrong observation -1.5; wrong action -1 (not executed). 2 attempts per position (VIter), the
second after the user turn "You failed this trial because <reason>." in the public words, which
restate the output format; exhausting them adds -1 and ends the route, failed. Evaluation: ID
and rule-OOD on the same 48 routes, visual-OOD on 2 routes in each of 9 cities.

The verifier checks, in this order (the public code's order): (1) the action equals the ground
truth -> correct, +1, whatever the observation says; (2) otherwise the "current observation"
is checked: it must say "intersection" exactly when the agent is at one, and must name exactly
the landmarks of the route that are in view (none between intersections) -> else
wrong_observation, -1.5; (3) otherwise wrong_action, -1. It reads at most MAX_RESPONSE_CHARS of
an answer, in linear time, and never raises.

Where we differ from the public code, and why (everything else is word for word):
  * synthetic cities instead of Google Street View, whose panoramas cannot be downloaded: a
    jittered street grid with bent streets and two diagonal avenues (so all 8 headings and all
    4 turn classes occur), named shops, drawn in code in 10 visual styles ("train" plus 9 for
    visual-OOD). Routes use the public route_infos.json format, so a real route file loads
    the same way (`load_routes`) and is drawn from the route alone;
  * the relative turn is wrapped into (-180, 180]: the public code does not wrap, so north ->
    west says "right" (a bug; it changes about 22% of the turn words);
  * the grid is laid out [front, right / back, left], as the prompt says it is (the public
    code pastes its diagonal views in another order);
  * V-IRL-VL's current step reads "O_n: You observe an image of 4 views; " everywhere: the
    public code appends "You observe an intersection" at intersections, which gives the
    intersection away in text;
  * the observation check compares with the true position: the public code compares with the
    landmark-only field, so its "you are at an intersection" never fires (a bug). It also
    checks the landmarks the observation names (a wrong one is a wrong observation too); that
    outcome has our own message in the public style;
  * the action is read leniently (case, spaces, quotes; JSON in code fences or with trailing
    commas; a repeated key counts once, the first); an unreadable action is a wrong action
    without an observation check; "no intersection" counts as a negation. The public code
    compares exact strings, which scores the format rather than the decision;
  * exhausting the attempts adds -1 to the last failed attempt and ends the route (the public
    code generates a third answer only to give it -1): one outcome per attempt;
  * forward points sit exactly on the street (the public code snaps them to the nearest
    panorama; there are none here); the count rule is the public one;
  * fixed route pools, the same in every run: 1000 training routes in the training city
    (seed 0), 100 in each other city; evaluation routes from seed 1, leaving out any training
    route (the public code draws 48 routes with replacement from its route file);
  * street views are 448 px grids by default, for the CPU; `PAPER_GRID_SIZE` is the public size.

Run it:
    python virl.py --show out/ [--city harbor] [--seed 3]   # route map + the views along the route
    python virl.py --play [--city train] [--actions relative] [--seed 3]   # navigate yourself
"""
import argparse
import json
import math
import random
import re
import sys
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from generalpoints import Verdict

ANSWER_KEY = "action"  # the "answer" part of a response starts here (public configs: pattern_language ["action"])
MAX_ATTEMPTS = 2  # VIter: attempts per position (public configs: verify_iter 2)
SPLITS = ("id", "ood-rule", "ood-visual")
ACTIONS = ("absolute", "relative")
COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
TURNS = ("left", "right", "slightly left", "slightly right")
SIDES = ("front", "right front", "right", "right behind", "behind", "left behind", "left", "left front")
# Observation texts, as the public env writes them (navigation_environment.py): a milestone block
# without a landmark says "No landmark nearby", the start and the forward points "No landmarks
# nearby" (plural); the oracle observation is "<landmark text>; <intersection text>", where the
# intersection text is empty at the start, the forward points and the destination.
NO_LANDMARK = "No landmark nearby"
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
GRID_SIZE = 448  # default street-view grid, pixels per side (two 222-pixel views + a 4-pixel line)
PAPER_GRID_SIZE = 2 * 1200 + 5  # the public grid: resolution 1200 per view + a 5-pixel line (navigation_environment.py)
LANDMARK_RADIUS = 30.0  # metres: a corner shop this close to an intersection is seen there
MIN_GAP_M = 8.0  # metres: a forward point this close to a street's end is dropped (public code, relocation: true)
M_PER_DEG = 111_320.0  # metres per degree of latitude (flat-earth conversion, fine for a city)


# ---------------------------------------------------------------------------------------------
# CITY STYLES: one for training, nine more for visual-OOD (the paper's nine other cities)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Style:
    sky: str
    ground: str  # sidewalks
    road: str
    facades: tuple  # building colours
    window: str
    pattern: str  # window shape: grid | arch | round | tall | shutter | band | column
    store: str  # landmark storefront
    sign_bg: str
    sign_fg: str
    font: str
    prefixes: str  # invented landmark names: "<prefix> <kind>"


KINDS = "Cafe Bakery Museum Books Pharmacy Bank Hotel Market Theater Gym Florist Diner Gallery Library Tailor Toys"
STYLES = {
    "train": Style("#9cc9ee", "#c9c1b3", "#5a5a5e", ("#b5876a", "#d8c3a5", "#9a6b55"), "#37506b", "grid",
                   "#2f6b3d", "#1f4d2b", "#ffffff", "DejaVuSans-Bold.ttf",
                   "Alder Birchwood Cobble Dunmore Fenwick Garrow Hollis Juniper Kestrel Larkin Marlow Pemberly"),
    "harbor": Style("#b7c4cc", "#9aa5ab", "#44484c", ("#1f3b57", "#2f6f73", "#486a8a"), "#e8e0c8", "round",
                    "#f2c14e", "#13294b", "#ffd23f", "DejaVuSansMono-Bold.ttf",
                    "Anchor Brine Corvid Driftwood Gull Halyard Keel Lantern Mooring Pier Saltmarsh Tidewater"),
    "desert": Style("#f6d7a7", "#e3c28f", "#8c6f52", ("#d98e5a", "#e9b872", "#c7683b"), "#5b3a29", "arch",
                    "#7a4a2a", "#f7ead0", "#6b2f12", "DejaVuSerif.ttf",
                    "Adobe Cactus Dune Ember Mesa Ocotillo Pueblo Saguaro Sirocco Sunstone Terracotta Yucca"),
    "neon": Style("#1a1033", "#2b2540", "#15131c", ("#241e38", "#111018", "#30254a"), "#ff3fd8", "band",
                  "#0b0b12", "#000000", "#39ff14", "DejaVuSansCondensed-Bold.ttf",
                  "Arcade Byte Chrome Circuit Flux Glitch Laser Neon Pixel Quantum Synth Voltage"),
    "alpine": Style("#dfefff", "#f4f6f8", "#7d7f83", ("#7b4b2a", "#5e3a22", "#a0683f"), "#f5f0e6", "shutter",
                    "#b22222", "#ffffff", "#b22222", "DejaVuSerif-Bold.ttf",
                    "Avalanche Chalet Edelweiss Glacier Ibex Larch Marmot Pinecone Ridge Snowcap Summit Timberline"),
    "garden": Style("#c8ecd0", "#a9cf9a", "#6b6b5f", ("#5f8f4e", "#86b06e", "#3f6b3a"), "#fdf6e3", "tall",
                    "#f4a6c0", "#2e7d32", "#fffde7", "DejaVuSans-Oblique.ttf",
                    "Blossom Clover Fern Hawthorn Ivy Lavender Meadow Orchid Primrose Sage Tulip Willow"),
    "marble": Style("#e8e4f0", "#dcd8d0", "#8a8780", ("#f2efe8", "#d9d4c7", "#c8c2b4"), "#6d6a63", "column",
                    "#1c1c1c", "#1c1c1c", "#d4af37", "DejaVuSerif-Italic.ttf",
                    "Atrium Basilica Corinth Doric Forum Ionic Laurel Meridian Obelisk Pantheon Portico Vesta"),
    "tropic": Style("#7fe0f0", "#f3e2b3", "#6e7c7c", ("#ff8fab", "#4cc9c0", "#ffd166"), "#ffffff", "grid",
                    "#06d6a0", "#ef476f", "#ffffff", "DejaVuSans.ttf",
                    "Bamboo Coconut Coral Hibiscus Lagoon Mango Palm Papaya Reef Sunset Toucan Tropica"),
    "industrial": Style("#8e9094", "#77736e", "#3a3a3a", ("#8b2e1f", "#6e2a1c", "#a2442f"), "#2b2b2b", "grid",
                        "#444444", "#c0392b", "#ffffff", "DejaVuSansMono.ttf",
                        "Anvil Boiler Cinder Foundry Furnace Gasket Girder Ironside Piston Rivet Smelter Steam"),
    "glass": Style("#cfe8ff", "#bfc6cc", "#50565c", ("#3f7cac", "#5a9bd5", "#2c5f8a"), "#d6ecff", "band",
                   "#ffffff", "#ffffff", "#0d1b2a", "DejaVuSerifCondensed-Bold.ttf",
                   "Apex Crystal Echo Facet Horizon Lumen Mirror Nova Prism Skyline Vertex Zenith"),
}
CITIES = tuple(STYLES)
OOD_CITIES = CITIES[1:]  # visual-OOD


# ---------------------------------------------------------------------------------------------
# ANGLES: headings in degrees clockwise from north
# ---------------------------------------------------------------------------------------------
def wrap(deg):
    """An angle difference wrapped into (-180, 180] (ours: the public code does not wrap)."""
    deg = deg % 360
    return deg - 360 if deg > 180 else deg


def relative_turn(prev_heading, next_heading):
    """Below -45 left, above 45 right, [-45, 0] slightly left, (0, 45] slightly right (public code:
    navigation_environment.py, _parse_instruction_and_rail), on the wrapped difference (ours)."""
    d = wrap(next_heading - prev_heading)
    if d < -45:
        return "left"
    if d > 45:
        return "right"
    return "slightly left" if d <= 0 else "slightly right"


def compass(heading):
    """The nearest of the 8 compass words: 177 -> south, 22 -> north, 23 -> northeast."""
    return COMPASS[int((heading % 360) / 45 + 0.5) % 8]


def side(heading, bearing):
    """Where something at compass `bearing` is for an agent facing `heading` (8 sides)."""
    return SIDES[int(((bearing - heading) % 360) / 45 + 0.5) % 8]


def bearing(a, b):
    """Compass bearing from geocode a to geocode b, (lat, lng) pairs."""
    dx = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(dx, b[0] - a[0])) % 360


def distance(a, b):
    return M_PER_DEG * math.hypot((b[1] - a[1]) * math.cos(math.radians(a[0])), b[0] - a[0])


# ---------------------------------------------------------------------------------------------
# SYNTHETIC CITIES: a jittered 7x7 street grid, bent streets, two diagonal avenues, shops
# ---------------------------------------------------------------------------------------------
@dataclass
class City:
    style: str
    origin: tuple  # (lat, lng) of the point (0, 0) in metres
    xy: list  # node -> (x east, y north) in metres
    nbrs: dict  # node -> neighbour nodes
    corner: dict  # intersection node -> (name, (x, y)) of the shop at one of its corners
    street: list  # mid-block shops (the destinations): (name, (x, y), (u, v) street, t along it)

    def geo(self, p):
        """Metres -> (lat, lng), rounded as written to route files."""
        lat = self.origin[0] + p[1] / M_PER_DEG
        return (round(lat, 7), round(self.origin[1] + p[0] / (M_PER_DEG * math.cos(math.radians(self.origin[0]))), 7))

    def is_intersection(self, n):
        return len(self.nbrs[n]) >= 3


@lru_cache(maxsize=None)
def make_city(style="train", size=7, block=100.0):
    """The city of a style, the same in every process (seeded by the style's name)."""
    if style not in STYLES:
        raise ValueError(f"unknown city {style!r}; choose from {', '.join(CITIES)}")
    rng = random.Random(f"virl-city/{style}")
    node = {(i, j): k for k, (i, j) in enumerate((i, j) for i in range(size) for j in range(size))}
    xy = [[i * block + rng.uniform(-8, 8), j * block + rng.uniform(-8, 8)] for i, j in node]
    for j in rng.sample(range(1, size - 1), 2):  # two bent east-west streets (zigzag of ~15 degrees)
        for i in range(size):
            xy[node[i, j]][1] += 14 if i % 2 else -14
    for i in rng.sample(range(1, size - 1), 1):  # and one bent north-south street
        for j in range(size):
            xy[node[i, j]][0] += 14 if j % 2 else -14
    edges = {(node[i, j], node[i + 1, j]) for i in range(size - 1) for j in range(size)}
    edges |= {(node[i, j], node[i, j + 1]) for i in range(size) for j in range(size - 1)}
    for e in rng.sample(sorted(edges), len(edges) // 12):  # a few missing street segments
        edges.discard(e)
    # diagonal avenues through the cells (i, i + c) and (i, size - 2 - i + c); a cell takes one
    c1, c2 = rng.choice((-1, 0, 1)), rng.choice((-1, 0, 1))
    used = set()
    for i in range(size - 1):
        for cell, a, b in (((i, i + c1), (i, i + c1), (i + 1, i + 1 + c1)),
                           ((i, size - 2 - i + c2), (i, size - 1 - i + c2), (i + 1, size - 2 - i + c2))):
            if a in node and b in node and cell not in used:
                used.add(cell)
                edges.add((node[a], node[b]))
    nbrs = {k: [] for k in range(len(xy))}
    for u, v in sorted(edges):
        nbrs[u].append(v)
        nbrs[v].append(u)
    names = [f"{p} {k}" for p in STYLES[style].prefixes.split() for k in KINDS.split()]
    rng.shuffle(names)
    city = City(style, (40.0 + CITIES.index(style), -74.0 + CITIES.index(style)), xy, nbrs, {}, [])
    for n in range(len(xy)):  # shops near intersection corners, beside one of its streets
        if city.is_intersection(n) and rng.random() < 0.55:
            w = rng.choice(nbrs[n])
            (dx, dy), s = _unit(xy[n], xy[w]), rng.choice((-1, 1))
            city.corner[n] = (names.pop(), (xy[n][0] + 20 * dx + 13 * s * dy, xy[n][1] + 20 * dy - 13 * s * dx))
    for u, v in sorted(edges):  # shops along streets: the destinations
        if city.is_intersection(u) and city.is_intersection(v) and rng.random() < 0.5:
            t, s, (dx, dy) = rng.uniform(0.45, 0.65), rng.choice((-1, 1)), _unit(xy[u], xy[v])
            px, py = xy[u][0] + t * (xy[v][0] - xy[u][0]), xy[u][1] + t * (xy[v][1] - xy[u][1])
            city.street.append((names.pop(), (px + 12 * s * dy, py - 12 * s * dx), (u, v), t))
    return city


def _unit(a, b):
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = math.hypot(dx, dy)
    return dx / n, dy / n


def _sample_route(city, rng):
    """One route in the public route_infos.json format: start mid-block, 2-6 intersections
    (no U-turns, none visited twice), then a shop in the middle of a street."""
    X = city.xy
    while True:
        name, shop, (u, v), t = rng.choice(city.street)
        if rng.random() < 0.5:  # approach the shop from either end of its street
            u, v, t = v, u, 1 - t
        path = [u]  # walked backwards from the last intersection
        for _ in range(rng.randint(2, 6) - 1):
            options = [w for w in city.nbrs[path[-1]] if city.is_intersection(w) and w not in path and w != v]
            if not options:
                break
            path.append(rng.choice(options))
        path.reverse()
        starts = [a for a in city.nbrs[path[0]] if a not in path and a != v]
        if len(path) < 2 or not starts:
            continue
        a, f = rng.choice(starts), rng.uniform(0.3, 0.7)
        start = (X[a][0] + f * (X[path[0]][0] - X[a][0]), X[a][1] + f * (X[path[0]][1] - X[a][1]))
        dest = (X[u][0] + t * (X[v][0] - X[u][0]), X[u][1] + t * (X[v][1] - X[u][1]))
        geos = [city.geo(p) for p in [start] + [X[n] for n in path] + [dest]]
        heads = [round(bearing(geos[k], geos[k + 1])) % 360 for k in range(len(geos) - 1)]
        if any(abs(wrap(h2 - h1)) > 150 for h1, h2 in zip(heads, heads[1:])):
            continue  # a near U-turn: not a street route anyone would give
        break
    init_heading = rng.randint(1, 359)  # 0 means "unknown" in the public format
    blocks, landmarks, roads = [], [], []
    for k, geo in enumerate(geos[1:]):
        if k < len(path):  # an intersection: its corner shop (if any), its streets
            n = path[k]
            near = [s for s in city.corner.values() if math.dist(s[1], X[n]) < LANDMARK_RADIUS]
            shop_k = min(near, key=lambda s: math.dist(s[1], X[n]), default=None)
            roads.append([round(bearing(geo, city.geo(X[w]))) % 360 for w in city.nbrs[n]])
        else:
            shop_k, roads_k = (name, shop), heads[-1]
            roads.append([roads_k, (roads_k + 180) % 360])
        if shop_k is None:
            seen = NO_LANDMARK
        else:
            seen = f"{shop_k[0]} is on your {side(heads[k], bearing(geo, city.geo(shop_k[1])))}"
            landmarks.append({"name": shop_k[0], "geocode": list(city.geo(shop_k[1]))})
        blocks.append(MILESTONE.format(idx=k + 1, landmarks=seen, dist=round(distance(geos[k], geo)), h=heads[k],
                                       human=init_heading if k == 0 else heads[k - 1], word=compass(heads[k])))
    return {"city": city.style,
            "start_place": {"geocode": list(geos[0]), "relocated_geocode": list(geos[0]),
                            "road_headings": [heads[0], (heads[0] + 180) % 360]},
            "dest_place": {"name": name, "geocode": list(city.geo(shop)), "relocated_geocode": list(geos[-1])},
            "init_heading": init_heading,
            "route_results": {"geocode_list": [list(g) for g in geos[1:]], "landmark_list": landmarks,
                              "road_headings": roads},
            "milestone_info": "".join(blocks)}


MILESTONE = """
{{
"intersection_idx": "{idx}",
"landmarks": "{landmarks}",
"distance": "{dist} meters",
"human_heading": "{human}",
"to_next_intersection_heading": "{h} ({word})",
}}
"""


# ---------------------------------------------------------------------------------------------
# ROUTES: the public format <-> one in-memory form; instructions and the ground-truth rail
# ---------------------------------------------------------------------------------------------
@dataclass
class Route:
    city: str  # the style its street views are drawn in ("train" for a public route file)
    start: tuple  # (lat, lng)
    init_heading: int
    geocodes: list  # the intersections, then the destination
    headings: list  # heading of the street leading to geocodes[k] (int degrees)
    directions: list  # its compass word, as the file writes it: "177 (south)" -> "south"
    landmarks: list  # seen at geocodes[k]: "<name> is on your <side>" or "No landmark nearby"
    destination: str
    roads: list  # street headings at the start and at each geocode (for drawing the views)
    raw: dict  # the route as read / written (public format; extra keys are ours)


def parse_milestones(text):
    """The milestone_info text -> one dict per {...} block, as the public parser reads it."""
    blocks = []
    for chunk in text.split("}"):
        pairs = [line.strip().rstrip(",").split(":", 1) for line in chunk.lstrip().lstrip("{").splitlines()]
        block = {k.strip().strip("\"'"): v.strip().strip("\"'") for k, v in (p for p in pairs if len(p) == 2)}
        if block:
            blocks.append(block)
    return blocks


def route_from_json(d):
    """A route dict of the public format (our extra keys optional) -> Route."""
    blocks = parse_milestones(d["milestone_info"])
    heads = [round(float(b["to_next_intersection_heading"].split("(")[0])) for b in blocks]
    words = [b["to_next_intersection_heading"].split("(")[1].split(")")[0].strip() for b in blocks]
    seen = [b.get("landmarks", NO_LANDMARK) for b in blocks]
    start = tuple(d["start_place"].get("relocated_geocode") or d["start_place"]["geocode"])
    geos = [tuple(g) for g in d["route_results"]["geocode_list"]]
    roads = [d["start_place"].get("road_headings", [heads[0], heads[0] + 180])]
    # a route without street headings (a real one) is drawn with 4-way crossings
    roads += d["route_results"].get("road_headings") or [
        [h + 180, heads[k + 1], h + 90, h - 90] if k + 1 < len(heads) else [h, h + 180] for k, h in enumerate(heads)]
    if len(geos) != len(heads):
        raise ValueError(f"route has {len(geos)} geocodes but {len(heads)} milestone blocks")
    return Route(d.get("city", "train"), start, int(d.get("init_heading") or 0), geos, heads, words, seen,
                 d["dest_place"]["name"], [[r % 360 for r in rs] for rs in roads], d)


def load_routes(path):
    """Routes from a route_infos.json file: [route_list, route_count] (the public format)."""
    data = json.loads(Path(path).read_text())
    return [route_from_json(d) for d in data[0]]


def save_routes(routes, path):
    Path(path).write_text(json.dumps([[r.raw for r in routes], len(routes)], indent=1))


def generate_routes(n, city="train", seed=0):
    """n routes in the synthetic city of a style, deterministic from (city, seed)."""
    rng = random.Random(f"virl-routes/{city}/{seed}")
    c = make_city(city)
    return [route_from_json(_sample_route(c, rng)) for _ in range(n)]


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
    always says "Turn", even when it is also the first."""
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
    at the destination. The start heading is the route's init_heading (see `start_heading`)."""
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


# ---------------------------------------------------------------------------------------------
# THE VERIFIER
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
    answer = parse_answer(response)
    action = normalize_action(answer.get("action", ""))
    if action == (position.action if actions == "absolute" else position.relative):
        return Verdict("correct", REWARDS["correct"], MESSAGES["correct"])
    if not action:  # ours: no readable action is a wrong action, whatever the observation says
        return Verdict("wrong_action", REWARDS["wrong_action"], MESSAGES["wrong_action"])
    seen = answer.get("current observation", "")[:MAX_RESPONSE_CHARS].lower()
    if says_intersection(seen) != position.intersection:
        why = MESSAGES["at" if position.intersection else "not_at"]
        return Verdict("wrong_observation", REWARDS["wrong_observation"], why)
    if {n for n in names if n.lower() in seen} != ({position.landmark} if position.landmark else set()):
        return Verdict("wrong_observation", REWARDS["wrong_observation"], MESSAGES["landmarks"])
    return Verdict("wrong_action", REWARDS["wrong_action"], MESSAGES["wrong_action"])


def action_space(relative=False):
    """Every valid action string of a split's action space."""
    return ["forward()", "stop()"] + [f"turn_direction({x})" for x in (TURNS if relative else COMPASS)]


# ---------------------------------------------------------------------------------------------
# PROMPTS: the public Q_VIRL_L / Q_VIRL_VL (prompt_lib/prompts.py), word for word, quirks kept:
# the leading newline, "stree tviews", the space after "executed.", the line break after "You".
# ---------------------------------------------------------------------------------------------
Q_VIRL_L = """
[Task Description]
You are an expert in navigation. You will receive a sequence of instructions to follow. You
are also provided with your observation and action history in text. Your goal is to first analyze the instruction and identify the next sentence to be executed. \n\
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
You are an expert in navigation. You will receive a sequence of instructions to follow while observing your surrounding stree tviews. You
are also provided with your observation and action history in text. Your goal is to first analyze the instruction and identify the next sentence to be executed. \n\
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
VL_NOW = "You observe an image of 4 views; "  # ours: without the public "You observe an intersection"


def history_text(rail, pos, actions="absolute", vision=False):
    r"""The [Observations and actions sequence] at rail position pos, as the public env writes it
    (navigation_environment.py, get_observation_action_sequence): "O_i: <observation>" and
    "A_i: <action>" for each passed position, then the current "O_n: ..." and "A_n: ", every line
    ending in a newline. At pos 1 with absolute actions:
        "O_1: No landmarks nearby; \nA_1: turn_direction(north)\nO_2: No landmarks nearby; \nA_2: \n"
    V-IRL-VL's current observation is VL_NOW."""
    lines = []
    for i, p in enumerate(rail[:pos]):
        lines += [f"O_{i + 1}: {p.observation}", f"A_{i + 1}: {p.action if actions == 'absolute' else p.relative}"]
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
                       "action": position.action if actions == "absolute" else position.relative})


def _user(text, image=False):
    return {"role": "user", "content": ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]}


def _assistant(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


# ---------------------------------------------------------------------------------------------
# THE ENVIRONMENT: one route per episode, up to max_attempts answers per position (VIter)
# ---------------------------------------------------------------------------------------------
class NavigationEnv:
    """reset() starts a route; step(answer) scores it. obs = {"messages": chat, "image": PIL or None}.

    info: gt_action (at the returned position), verdict, attempt (used here), clean (no failed
    attempt on this route yet), position / n_positions, steps_correct (positions passed),
    route_success (True when the route just ended at the destination), observation,
    instruction, city. Per-step accuracy of a route = steps_correct / n_positions at its end.
    """

    def __init__(self, routes, actions="absolute", vision=False, max_attempts=MAX_ATTEMPTS,
                 straight_line_length=5, drop_rate=0.5, seed=None, image_size=None):
        if not routes or actions not in ACTIONS or max_attempts < 1:
            raise ValueError(f"bad V-IRL settings: {len(routes)} routes, actions={actions!r}, "
                             f"max_attempts={max_attempts}")
        self.routes, self.actions, self.vision, self.max_attempts = list(routes), actions, vision, max_attempts
        self.straight_line_length, self.drop_rate = straight_line_length, drop_rate
        self.image_size = image_size or GRID_SIZE  # None: the CPU default
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
        self.verdict, self.clean, self.done, self.steps_correct = None, True, False, 0
        self._goto(0)
        return self._obs(), self._info(False)

    def _goto(self, pos):
        self.pos, self.attempt, self.image = pos, 0, None
        self.messages = [_user(prompt_text(self.sentences, self.rail, pos, self.actions, self.vision), self.vision)]

    def step(self, response):
        if self.done:
            raise RuntimeError("the route is over (or never began): call reset()")
        here = self.rail[self.pos]
        v = self.verdict = verify(response, here, self.actions, self.names)
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
            self.messages = self.messages + [_assistant(response)]
            if self.attempt >= self.max_attempts:
                reward, truncated = reward + EXHAUSTED_PENALTY, True
            else:
                self.messages.append(_user(FEEDBACK.format(v.message)))
        self.done = terminated or truncated
        return self._obs(), reward, terminated, truncated, self._info(terminated)

    def oracle_response(self):
        """The correct answer at the current position (the SFT target)."""
        return answer_text(self.rail[self.pos], self.actions)

    def _obs(self):
        if self.vision and self.image is None:
            self.image = render_grid(self.rail[self.pos], self.route.city, self.image_size)
        return {"messages": list(self.messages), "image": self.image}

    def _info(self, success):
        p = self.rail[self.pos]
        return {"gt_action": p.action if self.actions == "absolute" else p.relative, "verdict": self.verdict,
                "attempt": self.attempt, "clean": self.clean, "position": self.pos, "n_positions": len(self.rail),
                "steps_correct": self.steps_correct, "route_success": success, "observation": p.observation,
                "instruction": p.instruction, "city": self.route.city}


# ---------------------------------------------------------------------------------------------
# SPLITS, SFT DATA, TOKENIZER CORPUS
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def route_pool(city="train"):
    """The training routes of a city (seed 0): 1000 in the training city, 100 in the others."""
    return tuple(generate_routes(N_TRAIN_ROUTES if city == "train" else N_CITY_ROUTES, city, seed=0))


@lru_cache(maxsize=None)
def eval_routes(split):
    """The fixed evaluation routes: seed 1 of each city, leaving out any route of its training pool."""
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
        prompt = _user(prompt_text(instructions(route), rail, pos, actions, vision), vision)
        out.append({"messages": [prompt, _assistant(answer_text(rail[pos], actions))],
                    "image": render_grid(rail[pos], route.city, image_size or GRID_SIZE) if vision else None})
    return out


def tokenizer_corpus(n=2000):
    """Prompts (L and VL forms, both action spaces, every city style), answers and feedback turns."""
    rng = random.Random("virl-corpus")
    texts = [FEEDBACK.format(m) for k, m in MESSAGES.items() if k != "correct"]
    variants = [(c, a, v) for c in CITIES for a in ACTIONS for v in (False, True)]
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
# STREET VIEWS (V-IRL-VL): four views drawn from the position's streets, shop and city style
# ---------------------------------------------------------------------------------------------
# where a shop on each side of the agent is drawn: (view 0 front / 1 right / 2 back / 3 left, x)
SIDE_VIEW = {"front": (0, 0.5), "right front": (1, 0.27), "right": (1, 0.5), "right behind": (1, 0.73),
             "behind": (2, 0.5), "left behind": (3, 0.27), "left": (3, 0.5), "left front": (3, 0.73)}


@lru_cache(maxsize=64)
def _font(name, px):
    try:
        return ImageFont.truetype(name, px)
    except OSError:  # the DejaVu fonts are missing: Pillow's own font
        return ImageFont.load_default(px)


@lru_cache(maxsize=4096)
def _sign_font(style, text, width, px):
    """The largest font (at most px) that fits text into width pixels."""
    while px > 8 and _font(STYLES[style].font, px).getlength(text) > width:
        px -= 1
    return _font(STYLES[style].font, px)


def _sub(q, a0, a1, b0, b1):
    """Part of a quad (top-left, top-right, bottom-right, bottom-left): across a0..a1, down b0..b1."""
    def at(a, b):
        top = (q[0][0] + (q[1][0] - q[0][0]) * a, q[0][1] + (q[1][1] - q[0][1]) * a)
        bot = (q[3][0] + (q[2][0] - q[3][0]) * a, q[3][1] + (q[2][1] - q[3][1]) * a)
        return top[0] + (bot[0] - top[0]) * b, top[1] + (bot[1] - top[1]) * b
    return [at(a0, b0), at(a1, b0), at(a1, b1), at(a0, b1)]


def _bbox(q):
    xs, ys = [p[0] for p in q], [p[1] for p in q]
    return min(xs), min(ys), max(xs), max(ys)


def _window(d, st, q, k):
    """One window in the city's pattern, inside the quad q (a wall patch seen in perspective)."""
    if st.pattern == "round":
        d.ellipse(_bbox(q), fill=st.window)
    elif st.pattern == "arch":
        d.polygon(_sub(q, 0, 1, 0.4, 1), fill=st.window)
        d.ellipse(_bbox(_sub(q, 0, 1, 0, 0.8)), fill=st.window)
    elif st.pattern == "tall":
        d.polygon(_sub(q, 0.25, 0.75, -0.4, 1), fill=st.window)
    elif st.pattern == "column":  # pillars between dark openings
        d.polygon(_sub(q, 0.3, 0.7, -0.6, 1.6), fill=st.window)
    elif st.pattern == "band":  # glass bands, every third one lit in the sign colour
        d.polygon(_sub(q, -0.6, 1.6, 0, 1), fill=st.sign_fg if k % 3 == 0 else st.window)
    else:  # grid, shutter
        d.polygon(q, fill=st.window)
        if st.pattern == "shutter":
            d.polygon(_sub(q, -0.4, 0, 0, 1), fill=st.store)
            d.polygon(_sub(q, 1, 1.4, 0, 1), fill=st.store)


def _street_view(d, st, s, off, crossing, var):
    """Looking along a street (off: its angle from the view's centre, degrees). Depth u runs from
    0 at the horizon to 1 at the bottom; the walls are parametrised by f, 0 at the image edge."""
    hy, vx = 0.42 * s, s / 2 + off / 45 * 0.3 * s  # horizon, vanishing point
    d.rectangle((0, hy, s, s), fill=st.ground)
    d.polygon([(vx - 1, hy), (vx + 1, hy), (0.92 * s, s), (0.08 * s, s)], fill=st.road)
    for u0, u1 in ((0.2, 0.28), (0.38, 0.52), (0.68, 0.95)):  # centre-line dashes
        ends = ((u0, -1), (u0, 1), (u1, 1), (u1, -1))
        d.polygon([(vx + (s / 2 - vx) * u + sg * 0.012 * s * u, hy + (s - hy) * u) for u, sg in ends], fill="#f0f0f0")
    first = 0.35 if crossing else 0.0  # in an intersection the nearest corner buildings are missing
    for sgn in (-1, 1):
        x0, xv = (0 if sgn < 0 else s), vx + sgn * 0.07 * s
        cuts = [first, 0.45, 0.62, 0.76, 0.88, 1.0] if crossing else [0.0, 0.3, 0.55, 0.72, 0.86, 1.0]
        for k, (f0, f1) in enumerate(zip(cuts, cuts[1:])):  # buildings of varied colour and height
            height = (1.0, 0.8, 0.92, 0.7, 0.85)[(var + k) % 5]
            wall = [(x0 + (xv - x0) * f, y) for f, y in ((f0, 0), (f1, 0), (f1, 1), (f0, 1))]
            wall = [(x, (0.8 * s + (hy - 0.79 * s) * f) - ((0.78 - 0.67 * f) * s * height if y == 0 else 0))
                    for (x, y), f in zip(wall, (f0, f1, f1, f0))]
            if sgn > 0:
                wall = [wall[1], wall[0], wall[3], wall[2]]  # keep the quad's left-to-right order
            d.polygon(wall, fill=st.facades[(var + k + (sgn > 0)) % 3])
            for c in range(2):
                for r in range(3):
                    patch = _sub(wall, 0.2 + 0.4 * c, 0.45 + 0.4 * c, 0.15 + 0.27 * r, 0.3 + 0.27 * r)
                    _window(d, st, patch, c + r + k)
    if crossing:  # standing in an intersection: the crossing street, zebra stripes, a traffic light
        yb = 0.8 * s + (hy - 0.79 * s) * first
        d.rectangle((0, yb, s, s), fill=st.road)
        u = (yb - hy) / (s - hy)
        xc, half = vx + (s / 2 - vx) * u, 0.42 * s * u
        for k in range(7):
            x = xc - half + (k + 0.2) * 2 * half / 7
            d.rectangle((x, yb + 0.01 * s, x + 0.6 * half / 7 * 2, yb + 0.09 * s), fill="#f4f4f4")
        d.rectangle((0.9 * s, 0.3 * s, 0.915 * s, yb), fill="#202020")
        d.rectangle((0.875 * s, 0.22 * s, 0.94 * s, 0.36 * s), fill="#202020")
        for k, c in enumerate(("#e33", "#eb3", "#3c3")):
            y = 0.24 * s + k * 0.04 * s
            d.ellipse((0.893 * s, y, 0.922 * s, y + 0.029 * s), fill=c)


def _facade_view(d, st, s, var):
    """Facing the buildings beside the street: three house fronts, a sidewalk, the kerb."""
    xs = [0, (0.3 + 0.08 * (var % 3)) * s, (0.68 + 0.06 * (var % 2)) * s, s]
    for k, (x0, x1) in enumerate(zip(xs, xs[1:])):
        top = (0.04 + 0.08 * ((var + k) % 3)) * s
        d.rectangle((x0, top, x1, 0.8 * s), fill=st.facades[(var + k) % 3], outline="#00000040")
        cols = max(1, int((x1 - x0) / (0.12 * s)))
        for c in range(cols):
            for r in range(3):
                x, y = x0 + (c + 0.25) * (x1 - x0) / cols, top + 0.06 * s + r * 0.16 * s
                _window(d, st, [(x, y), (x + 0.06 * s, y), (x + 0.06 * s, y + 0.09 * s), (x, y + 0.09 * s)], c + r)
        d.rectangle(((x0 + x1) / 2 - 0.04 * s, 0.67 * s, (x0 + x1) / 2 + 0.04 * s, 0.8 * s), fill="#3b2b20")
    d.rectangle((0, 0.8 * s, s, 0.9 * s), fill=st.ground)
    d.rectangle((0, 0.9 * s, s, s), fill=st.road)


def _shop(d, st, s, style, name, x, scale=1.0):
    """A landmark: storefront with an awning and its name on a sign, centred at x (0..1)."""
    cx, w, y1 = x * s, 0.46 * s * scale, 0.86 * s
    y = lambda f: y1 - (0.86 - f) * s * scale  # noqa: E731  (f: height as in the full-size shop)
    d.rectangle((cx - w / 2, y(0.4), cx + w / 2, y1), fill=st.store, outline="#111")
    d.rectangle((cx - w / 2 + 0.03 * s * scale, y(0.55), cx + 0.02 * s * scale, y(0.8)), fill="#dff3ff", outline="#111")
    d.rectangle((cx + 0.06 * s * scale, y(0.55), cx + w / 2 - 0.04 * s * scale, y1), fill="#3b2b20")
    for k in range(6):  # awning
        d.rectangle((cx - w / 2 + k * w / 6, y(0.46), cx - w / 2 + (k + 1) * w / 6, y(0.52)),
                    fill=st.sign_bg if k % 2 else "#f8f8f8")
    x0, x1 = max(2, cx - 0.46 * s * scale), min(s - 3, cx + 0.46 * s * scale)
    d.rectangle((x0, y(0.26), x1, y(0.45)), fill=st.sign_bg, outline=st.sign_fg, width=2)
    font = _sign_font(style, name, int(x1 - x0 - 8), int(0.11 * s * scale))
    d.text(((x0 + x1) / 2, y(0.355)), name, font=font, fill=st.sign_fg, anchor="mm")


def render_view(position, city="train", view=0, size=GRID_SIZE // 2 - 2):
    """One view (0 front, 1 right, 2 back, 3 left) at a rail position."""
    st, s = STYLES[city], size
    img = Image.new("RGB", (s, s), st.sky)
    d = ImageDraw.Draw(img)
    heading = position.heading + 90 * view
    var = int(abs(position.geocode[0] * 1e5) + abs(position.geocode[1] * 1e5)) + view  # facade colours
    streets = [wrap(r - heading) for r in position.roads if -45 < wrap(r - heading) <= 45]
    if streets:
        _street_view(d, st, s, min(streets, key=abs), position.intersection, var)
    else:
        _facade_view(d, st, s, var)
    if position.landmark and SIDE_VIEW.get(position.side, (None,))[0] == view:
        x = SIDE_VIEW[position.side][1]  # a shop ahead of / behind the agent stands further down the street
        _shop(d, st, s, city, position.landmark, x, 0.75 if streets and x == 0.5 else 1.0)
    return img


def render_grid(position, city="train", size=GRID_SIZE):
    """The 2x2 street-view grid [front, right / back, left]: views of (size - 4) // 2 pixels split
    by a black line (4 pixels at GRID_SIZE, 5 at PAPER_GRID_SIZE, as the public grid)."""
    s = (size - 4) // 2
    grid = Image.new("RGB", (size, size), "black")
    for view, (x, y) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        grid.paste(render_view(position, city, view, s), (x * (size - s), y * (size - s)))
    return grid


# ---------------------------------------------------------------------------------------------
# CLI: --show (route map and the views along it), --play (navigate in the terminal)
# ---------------------------------------------------------------------------------------------
def show(out, city="train", seed=0):
    """Write a route's map (streets, shops, the rail), its file, its first prompt with the oracle
    answers, and the street-view grid of every rail position to the folder out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c, route = make_city(city), generate_routes(1, city, seed)[0]
    rail = build_rail(route, rng=random.Random(seed))
    save_routes([route], out / "route_infos.json")

    def to_xy(g):  # (lat, lng) -> metres, inverse of City.geo
        lng_m = M_PER_DEG * math.cos(math.radians(c.origin[0]))
        return (g[1] - c.origin[1]) * lng_m, (g[0] - c.origin[0]) * M_PER_DEG

    fig, ax = plt.subplots(figsize=(8, 8))
    for u, ws in c.nbrs.items():
        for w in ws:
            ax.plot([c.xy[u][0], c.xy[w][0]], [c.xy[u][1], c.xy[w][1]], color="0.7", lw=3, zorder=1)
    for name, p in list(c.corner.values()) + [(n, p) for n, p, _, _ in c.street]:
        ax.plot(*p, "s", color=STYLES[city].store, ms=4, zorder=2)
        ax.annotate(name, p, fontsize=5, xytext=(2, 2), textcoords="offset points")
    xs, ys = zip(*[to_xy(p.geocode) for p in rail])
    ax.plot(xs, ys, "-o", color="crimson", ms=3, lw=2, zorder=3)
    ax.plot(xs[0], ys[0], "g^", ms=10, zorder=4)
    ax.plot(xs[-1], ys[-1], "r*", ms=14, zorder=4)
    ax.set_aspect("equal")
    ax.set_title(f"city {city!r}, route seed {seed}: start (green) -> {route.destination} (star)")
    fig.savefig(out / "map.png", dpi=120)
    plt.close(fig)
    for i, p in enumerate(rail):
        render_grid(p, city).save(out / f"step_{i:02d}.png")
    answers = "\n".join(answer_text(p) for p in rail)
    (out / "prompt.txt").write_text(f"{prompt_text(instructions(route), rail, 0)}\n\n{answers}\n")
    print(f"wrote {out}/map.png, route_infos.json, prompt.txt and {len(rail)} street-view grids")
    print("\n".join(f"{i + 1}. {s}" for i, s in enumerate(instructions(route))))


def play(city="train", actions="absolute", seed=0):
    """Type an action (e.g. forward()) or a whole JSON answer; a bare action is sent with the
    true observation filled in. Ctrl-D quits."""
    env = NavigationEnv(generate_routes(1, city, seed), actions, seed=seed)
    obs, info = env.reset()
    print(obs["messages"][-1]["content"][-1]["text"])
    total = 0.0
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print("\nbye")
            return
        if not line.startswith("{"):
            line = json.dumps({"current observation": info["observation"], "current instruction": "", "action": line})
        obs, reward, terminated, truncated, info = env.step(line)
        total += reward
        why = info["verdict"].message.split(". Please")[0]  # without the restated output format
        print(f"{info['verdict'].outcome}: {why} (reward {reward:+.1f}, total {total:+.1f})")
        if terminated or truncated:
            print("You reached the destination." if terminated else "The route failed.")
            return
        print(obs["messages"][-1]["content"][-1]["text"])


def main(argv=None):
    p = argparse.ArgumentParser(description="V-IRL navigation in synthetic cities (see the module docstring).")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--show", metavar="DIR", help="write a route's map, its street-view grids and its prompt to DIR")
    mode.add_argument("--play", action="store_true", help="navigate a route yourself in the terminal")
    p.add_argument("--city", default="train", help=f"city style: {', '.join(CITIES)}")
    p.add_argument("--seed", type=int, default=0, help="route seed")
    p.add_argument("--actions", default="absolute", help="--play's action space: absolute (ID) or relative (rule-OOD)")
    args = p.parse_args(argv)
    if args.city not in STYLES:
        p.error(f"unknown city {args.city!r}; choose from {', '.join(CITIES)}")
    if args.actions not in ACTIONS:
        p.error(f"unknown action space {args.actions!r}; choose from {', '.join(ACTIONS)}")
    if args.show:
        try:
            show(args.show, args.city, args.seed)
        except OSError as e:
            sys.exit(f"error: cannot write to {args.show}: {e.strerror}")
    else:
        play(args.city, args.actions, args.seed)


if __name__ == "__main__":
    main()
