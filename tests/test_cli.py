"""cli.py: the one preset mechanism of sft.py and ppo.py, and one-line help strings in every CLI."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402
import evaluate  # noqa: E402
import plots  # noqa: E402
import policy  # noqa: E402
import ppo  # noqa: E402
import sft  # noqa: E402

def test_preset_paper_fills_only_the_flags_left_out():
    p = cli.ArgumentParser()
    cli.add_preset(p)
    p.add_argument("--lr", type=cli.POSITIVE, default=1e-4)
    p.add_argument("--steps", type=cli.COUNT, default=600)
    paper = {"lr": 1e-6, "steps": 400}
    assert vars(cli.parse(p, [], paper)) == {"preset": "cpu", "lr": 1e-4, "steps": 600}
    assert vars(cli.parse(p, ["--preset", "paper"], paper)) == {"preset": "paper", "lr": 1e-6, "steps": 400}
    assert cli.parse(p, ["--preset", "paper", "--lr", "3e-6"], paper).lr == 3e-6  # explicit flags win


def test_sft_and_ppo_apply_their_paper_dicts_the_same_way():
    for module in (sft, ppo):
        args = module.parse_args(["--preset", "paper", "--init-flops", "0"] if module is sft else
                                 ["--preset", "paper"])
        for key, value in module.PAPER.items():
            if value is not None and key not in ("eval_episodes",):  # 0 -> None: the paper's count
                assert getattr(args, key) == value, (module.__name__, key)


def parsers(monkeypatch):
    """The parser of every command line, captured when it parses."""
    found = []

    def capture(self, *args, **kwargs):
        found.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(cli.ArgumentParser, "parse_args", capture)
    for main in (sft.parse_args, ppo.parse_args, evaluate.main, plots.main, policy.main):
        with pytest.raises(SystemExit):
            main([]) if main is not policy.main else main()
    return found


def test_every_help_string_is_one_line_of_at_most_100_characters(monkeypatch):
    found = parsers(monkeypatch)
    assert len(found) == 5
    for parser in found:
        problems = cli.help_problems(parser)
        assert not problems, problems
