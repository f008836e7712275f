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
import contextlib
import json
import logging
import math
import os
import shlex
import signal
import stat
import sys
from pathlib import Path


def _interrupted_while_starting(signum, frame):
    """SIGINT before main() runs: one line and status 130, not a traceback from inside an import."""
    print("interrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr, flush=True)
    raise SystemExit(130)


# The scripts that start through main() import cli before torch: while they import it (seconds),
# a Ctrl-C is one line too. main() puts Python's own handler back (a KeyboardInterrupt it reports).
STARTS_THROUGH_MAIN = ("sft.py", "ppo.py", "evaluate.py", "plots.py")
if Path(sys.argv[0] if sys.argv else "").name in STARTS_THROUGH_MAIN and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)


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
# Counts that multiply the work of every episode, bounded where no context limit does it (the
# stand-ins of evaluate.py): 100 attempts per hand / position, 100 sampling passes.
ATTEMPTS = number(int, at_least=1, at_most=100)
SAMPLES, SAMPLES_OR_0 = number(int, at_least=1, at_most=100), number(int, at_least=0, at_most=100)
# Sizes whose absurd values (10**9) would exhaust memory before the first step: examples or
# environments held at once (the paper's batch is 128), CPU threads (libgomp allocates per thread).
BATCH, THREADS = number(int, at_least=1, at_most=65536), number(int, at_least=1, at_most=1024)
SEED = number(int, at_least=0, at_most=2**32 - 1)  # the range numpy accepts as a seed


def steps(text: str) -> tuple:
    """A comma-separated list of step numbers, each at least 1: '40,10,20' -> (10, 20, 40)."""
    return tuple(sorted({COUNT(t.strip()) for t in text.split(",") if t.strip()}))
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
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = parse_args(argv)
        run(args)
    except RunError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the line short
        try:
            _stopped(args, argv)
        finally:
            signal.signal(signal.SIGINT, previous)  # an in-process caller (a test) keeps its Ctrl-C
        sys.exit(130)
    finally:
        dist = sys.modules.get("torch.distributed")  # imported by the script, if at all
        if dist is not None and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _stopped(args, argv) -> None:
    """The Ctrl-C line on stderr: for a run folder (sft.py, ppo.py) where it stopped and the command
    that continues it, the same plus --resume (checkpoints.interrupted); else just that it stopped."""
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


def out_problem(path, folder=True):
    """Why `path` cannot be written, as a run folder (folder=True) or a file, or None when it can.
    Checked before any work, so a run or an evaluation is never lost at its end. It really writes
    (os.access cannot tell for root, /proc, a name too long, a read-only file system): the missing
    folders and a probe file are made, then removed again, so the check leaves nothing behind.
        out_problem("notes.txt") -> "notes.txt is a file, not a folder"
        out_problem("notes.txt/run") -> "notes.txt/run is under notes.txt, which is a file"
        out_problem("/proc/run") -> "/proc/run cannot be written (No such file or directory)"
    """
    path, made = Path(path), []
    try:
        if path.exists() and path.is_dir() != folder:
            return f"{path} is {'a file, not a folder' if folder else 'a folder, not a file'}"
        if path.exists() and not (folder or path.is_file()):  # a FIFO would block, /dev/null be replaced
            return f"{path} is not a regular file"
        if link := next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None):
            return f"{path}: {link} is a link to nowhere (or a loop of links)"
        for parent in path.parents:  # the nearest one that exists must be a folder
            if parent.exists():
                if not parent.is_dir():
                    return f"{path} is under {parent}, which is a file"
                break
        if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 alone probes the shared folder
            return None
        where = path if folder else path.parent
        for missing in reversed([p for p in (where, *where.parents) if not p.exists()]):
            missing.mkdir()
            made.append(missing)
        existed = path.exists()  # a file is opened to append: its bytes stay as they are
        probe = where / f".write-probe-{os.getpid()}" if folder else path
        open(probe, "a").close()
        if folder or not existed:
            probe.unlink()
    except OSError as err:
        return f"{path} cannot be written ({err.strerror or err})"
    finally:
        for folder_made in reversed(made):  # the deepest first
            with contextlib.suppress(OSError):
                folder_made.rmdir()
    return None


MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "trainer_state.json", "value_head.safetensors")  # what a model or checkpoint folder holds


def run_folder_problem(path, reads: dict):
    """Why `path` cannot be the run folder of sft.py or ppo.py, or None: out_problem's reasons, or
    that it is (or resolves to) a folder the run reads (`reads`, e.g. {"--model": args.model}), a model
    or checkpoint folder, or lies inside one, or holds a config.json that is not a run's: the
    run's config.json and checkpoints would overwrite what is there.
        run_folder_problem("inits/gp-l", {}) -> "inits/gp-l is a model folder (it holds model.safetensors) ..."
    """
    if why := out_problem(path):
        return why
    try:
        real = Path(path).resolve()
        for flag, folder in reads.items():
            if folder and Path(folder).is_dir() and Path(folder).resolve() == real:
                return f"{path} is the {flag} folder; a run folder must be another"
        for folder in (real, *real.parents):
            if held := next((name for name in MODEL_FILES if (folder / name).exists()), None):
                where = "is" if folder == real else f"is inside {folder}, which is"
                return f"{path} {where} a model folder (it holds {held}); a run folder must be another"
        if (real / "config.json").exists() and not _is_run_config(real / "config.json"):
            return f"{path} holds a config.json that is not a run's; a run folder must be another"
    except (OSError, RuntimeError) as err:  # RuntimeError: a loop of links
        return f"{path} cannot be written ({getattr(err, 'strerror', None) or err})"
    return None


def _is_run_config(file) -> bool:
    """Whether `file` is a run's config.json (sft.py's and ppo.py's hold "method"); one that does
    not parse counts as a run's: check_same_run names it on --resume."""
    try:
        config = json.loads(Path(file).read_text())
    except (ValueError, RecursionError):
        return True
    return isinstance(config, dict) and "method" in config and "model_type" not in config


def write_atomic(path, text: str) -> None:
    """Write `text` to `path` through a temporary file renamed over it: a full disk or a kill
    mid-write leaves the old file whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def follow_umask(folder) -> None:
    """Give the files in `folder` the mode the user's umask gives new files: safetensors writes
    0600, which a colleague cannot read (and transformers then calls missing)."""
    mask = os.umask(0)
    os.umask(mask)
    for file in Path(folder).iterdir():
        if file.is_file() and not file.is_symlink():
            file.chmod(0o666 & ~mask)


def unreadable(folder):
    """The first file in `folder` (or the folder) that this process may not read, as one line, or
    None; named when a model fails to load, where transformers says "No such file or directory"."""
    folder = Path(folder)
    try:
        for file in sorted(folder.iterdir()):
            try:
                if file.is_file():
                    open(file, "rb").close()
            except PermissionError:
                return f"{file} cannot be read: permission denied (mode {stat.filemode(file.stat().st_mode)})"
    except PermissionError:
        return f"{folder} cannot be read: permission denied"
    except OSError:
        pass
    return None


def help_problems(parser) -> list:
    """The help strings of `parser` that are not one line of at most 100 characters (tests check
    every script's parser with this)."""
    return [f"{'/'.join(a.option_strings) or a.dest}: {a.help!r}" for a in parser._actions
            if a.help and a.help != argparse.SUPPRESS and ("\n" in a.help or len(a.help) > 100)]


@contextlib.contextmanager
def quiet(*libraries):
    """The libraries' loggers held to errors inside the block, e.g. quiet("transformers") around a
    load whose multi-line report the caller turns into its own one line (or accepts silently)."""
    loggers = [logging.getLogger(name) for name in libraries]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
