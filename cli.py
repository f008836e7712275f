"""The command lines' shared parts: range-checked argparse types, one-line errors, the presets.

Every script (sft.py, ppo.py, evaluate.py, plots.py, policy.py, experiments/) builds its parser
with `ArgumentParser`, whose errors are one line, and checks its numbers with `number()`, so a bad
flag is refused in one line before any model is loaded:

    python sft.py --lr nan      ->  sft.py: error: argument --lr: must be a finite number, not nan

One preset mechanism (sft.py and ppo.py): every flag's default is the CPU value, and the script's
PAPER dict holds the paper's values; `parse(parser, argv, PAPER)` applies them under
`--preset paper` to every flag left out of the command line (explicit flags win). Values that
depend on other flags (e.g. the learning rate, from-scratch or not) are None in both and are
computed by the script in one block right after parsing.

A reusable function that cannot go on raises `RunError` with a one-line message; only a script's
main() turns it into `error: <message>` on stderr and exit status 1, and a Ctrl-C into one line and
exit status 130 (`main`, for sft.py, ppo.py, evaluate.py, plots.py). This module imports no torch.
"""

import argparse
import math
import os
import shlex
import signal
import sys
from pathlib import Path


class RunError(ValueError):
    """A run that cannot go on, in one line (a damaged checkpoint, a run folder that is not this run's,
    nothing to plot); main() prints `error: <message>` and exits with status 1."""


def one_line(err) -> str:
    """An exception as one short line (torch's and safetensors' messages run to paragraphs)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line, `sft.py: error: argument --lr: must be > 0, not -1`,
    without the usage block before it (--help shows that)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def number(kind=float, at_least=None, above=None, at_most=None):
    """An argparse `type`: the flag's text as `kind` (float or int), refused with one line unless
    it is finite and within the bounds. type=number(above=0) for a learning rate,
    number(at_least=0, at_most=1) for a share, number(int, at_least=1) for a count:
        --lr nan  ->  "argument --lr: must be a finite number, not nan"
        --lr -1   ->  "argument --lr: must be > 0, not -1"
    """
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'an integer' if kind is int else 'a number'}, not {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
        if at_least is not None and value < at_least:
            raise argparse.ArgumentTypeError(f"must be >= {at_least}, not {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be > {above}, not {text}")
        if at_most is not None and value > at_most:
            raise argparse.ArgumentTypeError(f"must be <= {at_most}, not {text}")
        return value

    return parse


COUNT, COUNT_OR_0 = number(int, at_least=1), number(int, at_least=0)
SEED = number(int, at_least=0, at_most=2**32 - 1)  # the range numpy accepts as a seed
POSITIVE, NON_NEGATIVE, SHARE = number(above=0), number(at_least=0), number(at_least=0, at_most=1)


def add_preset(parser) -> None:
    """The --preset flag of sft.py and ppo.py (applied by `parse`)."""
    parser.add_argument("--preset", choices=["cpu", "paper"], default="cpu",
                        help="cpu: the defaults below, a tiny model on a laptop; paper: the paper's values, for GPUs")


def parse(parser, argv, paper: dict) -> argparse.Namespace:
    """argv parsed by `parser` (argv=None reads sys.argv); under --preset paper every flag left out
    takes its value in `paper` (the script's PAPER dict), explicit flags win:
        parse(p, ["--preset", "paper"], {"lr": 1e-6}).lr == 1e-6
        parse(p, ["--preset", "paper", "--lr", "3e-6"], {"lr": 1e-6}).lr == 3e-6
    """
    args = parser.parse_args(argv)  # every check (and --help) once, with the CPU defaults
    if args.preset == "paper":
        parser.set_defaults(**paper)
        args = parser.parse_args(argv)
    return args


def main(run, parse_args, argv=None) -> None:
    """The main() of sft.py, ppo.py and the experiments: run(parse_args(argv)); a RunError from anywhere
    in the run becomes `error: <its line>` on stderr and exit status 1, a Ctrl-C one line and exit
    status 130 (the shell's for SIGINT): for a run folder, where it stopped and how to continue
    (checkpoints.interrupted). A torchrun process group is closed."""
    args = None
    try:
        args = parse_args(argv)
        run(args)
    except RunError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut this line short
        ckpt = sys.modules.get("checkpoints")  # imported by sft.py and ppo.py (cli.py imports no torch)
        if ckpt is not None and getattr(args, "resume", None) is not None and args.out:
            argv = sys.argv[1:] if argv is None else list(argv)
            command = shlex.join(["python", sys.argv[0], *argv] + ([] if "--resume" in argv else ["--resume"]))
            line = ckpt.interrupted(args.out, command)
        else:
            line = "interrupted (Ctrl-C)"
        tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)  # a progress bar on a terminal: cleared,
        for bar in list(getattr(tqdm, "_instances", ())):       # else the line would follow it
            bar.leave = False
            bar.close()
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank gets the Ctrl-C; one says so
            print(line, file=sys.stderr, flush=True)
        sys.exit(130)
    finally:
        dist = sys.modules.get("torch.distributed")  # imported by the script, if at all
        if dist is not None and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def out_problem(path, folder=True):
    """Why `path` cannot be written, as a run folder (folder=True) or a file, or None when it can.
    Checked before any work, so a run or an evaluation is never lost at its end:
        out_problem("notes.txt") -> "notes.txt is a file, not a folder"
        out_problem("notes.txt/run") -> "notes.txt/run is under notes.txt, which is a file"
    """
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        return f"{path} is {'a file, not a folder' if folder else 'a folder, not a file'}"
    for parent in path.parents:  # the nearest one that exists must be a writable folder
        if parent.exists():
            if not parent.is_dir():
                return f"{path} is under {parent}, which is a file"
            if not os.access(parent, os.W_OK):
                return f"{path}: cannot write in {parent}"
            break
    return None


def help_problems(parser) -> list:
    """The help strings of `parser` that are not one line of at most 100 characters (tests check
    every script's parser with this)."""
    return [f"{'/'.join(a.option_strings) or a.dest}: {a.help!r}" for a in parser._actions
            if a.help and a.help != argparse.SUPPRESS and ("\n" in a.help or len(a.help) > 100)]
