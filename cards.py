"""GP-VL's images (generalpoints.py): four cards side by side on a casino-green table, drawn in
code, no image files. Suit symbols are polygons and circles (fonts may lack the ♠ glyph); each card
is drawn once per size at 2-3x and downsampled (anti-aliased), then cached, so a render is 4 pastes.

    python generalpoints.py --show hand.png [--rule ood] [--seed 3]     # the image of a dealt hand
"""
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

TABLE_GREEN = (0x35, 0x65, 0x4D)  # #35654d, the paper's table colour
RED, BLACK = (205, 0, 0), (0, 0, 0)
# Ink colours of the GP-VL pretraining stand-in (experiments/pretrain.py, inks=True): hues far
# from red, so that the visual-OOD split's red cards stay unseen (ours, for the laptop experiment)
INKS = {"black": BLACK, "navy": (0, 0, 140), "blue": (30, 90, 220), "green": (0, 110, 0), "teal": (0, 120, 120),
        "purple": (110, 0, 150), "grey": (95, 95, 95), "olive": (110, 110, 0)}


def _draw_suit(draw, suit, cx, cy, r, color):
    """A suit symbol centred at (cx, cy), about 2r across; shapes in unit coordinates."""
    def poly(points):
        draw.polygon([(cx + x * r, cy + y * r) for x, y in points], fill=color)

    def disc(x, y, rad):
        draw.ellipse([cx + (x - rad) * r, cy + (y - rad) * r, cx + (x + rad) * r, cy + (y + rad) * r], fill=color)

    if suit == "D":
        poly([(0, -1), (0.72, 0), (0, 1), (-0.72, 0)])
    elif suit == "H":
        disc(-0.48, -0.42, 0.5), disc(0.48, -0.42, 0.5), poly([(-0.965, -0.3), (0.965, -0.3), (0, 0.95)])
    elif suit == "S":  # an upside-down heart on a stem
        disc(-0.384, 0.186, 0.4), disc(0.384, 0.186, 0.4), poly([(-0.77, 0.09), (0.77, 0.09), (0, -0.91)])
        poly([(0, 0.3), (-0.3, 1.0), (0.3, 1.0)])
    else:  # clubs: three leaves on a stem
        disc(0, -0.5, 0.36), disc(-0.48, 0.12, 0.36), disc(0.48, 0.12, 0.36), disc(0, 0.02, 0.24)
        poly([(0, 0.0), (-0.3, 1.0), (0.3, 1.0)])


@lru_cache(maxsize=None)
def _font(size):
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=2048)
def _card_image(card, w, h, ink=None):
    """One card on its patch of table (the rounded corners show the green): corner indices, a
    large rank and a large suit symbol, in red for hearts and diamonds (or all in `ink`, an RGB)."""
    s = 3 if w < 200 else 2  # supersampling factor
    W, H = w * s, h * s
    rank, suit = card[:-1], card[-1]
    color = ink or (RED if suit in "HD" else BLACK)
    img = Image.new("RGB", (W, H), TABLE_GREEN)
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([0, 0, W - 1, H - 1], radius=int(W * 0.08), fill="white", outline=(110, 110, 110),
                        width=max(s, W // 70))
    # corner index (top-left), then copied upside down to the bottom-right as on a real card
    small = int(H * 0.11)
    d.text((W * 0.13, H * 0.035), rank, font=_font(small), fill=color, anchor="mt", stroke_width=small // 16,
           stroke_fill=color)
    _draw_suit(d, suit, W * 0.13, H * 0.19, W * 0.075, color)
    box = (0, 0, int(W * 0.26), int(H * 0.25))
    corner = img.crop(box).rotate(180)
    img.paste(corner, (W - box[2], H - box[3]))  # the card is symmetric: border and corner match
    big = int(H * 0.27)
    d.text((W / 2, H * 0.32), rank, font=_font(big), fill=color, anchor="mm", stroke_width=big // 22,
           stroke_fill=color)
    _draw_suit(d, suit, W / 2, H * 0.64, W * 0.2, color)
    return img.reduce(s)  # box-filter downsampling: anti-aliased edges


def render(cards, size, inks=None):
    """The table image of a hand, e.g. ['AS', '3C', 'QS', '7S']: size is an int (square) or (width, height).
    inks: one RGB per card to draw it in, instead of the suits' red and black."""
    W, H = (size, size) if isinstance(size, int) else size
    card_w = int(min(W / 4 * 0.9, H * 0.9 * 5 / 7))  # 5:7 cards, as in the paper's layout
    card_h = card_w * 7 // 5
    gap = (W - len(cards) * card_w) / (len(cards) + 1)
    canvas = Image.new("RGB", (W, H), TABLE_GREEN)
    for i, card in enumerate(cards):
        ink = inks[i] if inks else None
        canvas.paste(_card_image(card, card_w, card_h, ink), (int(gap + i * (card_w + gap)), (H - card_h) // 2))
    return canvas
