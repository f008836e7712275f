"""
The run folder: atomic checkpoints, resume, the metrics log; used by sft.py and ppo.py.

A run writes runs/NAME/ and survives being killed at any moment:
    config.json          the run's settings, and a record of each resume (check_same_run compares
                         a --resume against it: more steps and a lower lr may change, MAY_CHANGE)
    metrics.jsonl        one JSON line per log or evaluation, read by plots.py (RunLogger)
    checkpoint-STEP/     a policy.py folder (load_policy reads it) + optimizer, scheduler, RNG states;
                         the newest `keep` are kept (save)
    final                a link to the last checkpoint, made when the run finishes
A checkpoint appears only by the rename that completes it, so a kill mid-write leaves the previous
one as the newest; --resume takes the newest intact one (latest_intact, problem), restores the
training state (load) and drops what the log holds past its step (lines_up_to):

    last = checkpoints.latest_intact(out)                            # None: a fresh run
    state = checkpoints.load(last, policy, optimizer, scheduler)     # {"step": 20, **extra}
    checkpoints.save(out, step, policy, optimizer, scheduler, extra, final=step == steps)

Under torchrun every rank calls save and load: the sharded (FSDP) state is gathered to rank 0,
which alone writes; a file system shared by all ranks is assumed, as on clusters.
"""

import contextlib
import json
import math
import os
import pickle
import random
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_optimizer_state_dict,
                                                     set_optimizer_state_dict)

from cli import RunError, one_line, write_atomic  # RunError: what a run cannot go on from; main() exits with it

# -----------------------------------------------------------------------------------------------
# Saving: the full state gathered to rank 0, written atomically


def save(out_dir, step, policy, optimizer, scheduler, extra, keep=2, final=False):
    """Write out_dir/checkpoint-STEP/ atomically and keep the newest `keep` checkpoints.

    Every rank calls this (the FSDP state is gathered to rank 0, which writes). The folder holds
      - Policy.save: the model (save_pretrained, safetensors), tokenizer/processor, value head;
        load it with load_policy(path), so a checkpoint is also a model to evaluate or fine-tune;
      - optimizer.pt: the full (unsharded) optimizer state, keyed by parameter name;
      - scheduler.pt, trainer_state.json (step + `extra`: data position, tokens, flops ...);
      - rng-rankR.pt: the random states of every rank.
    Everything is written to .tmp-checkpoint-STEP first and renamed when complete, so a run
    killed (or a disk filling up) mid-write leaves the previous checkpoint as the latest one.
    final=True (the end of a run) also points the link out_dir/final at it, so `final` exists
    only once a run has finished. Assumes a file system shared by all ranks, as on clusters.
    """
    out_dir, rank = Path(out_dir), _rank()
    path, tmp = out_dir / f"checkpoint-{step}", out_dir / f".tmp-checkpoint-{step}"
    with writing(out_dir, path, tmp):  # a full disk: one line, the half-written tmp removed
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        _barrier()
        policy.save(str(tmp))  # every rank: under FSDP the weights are gathered to rank 0 (sft.py)
        optim_state = get_optimizer_state_dict(  # a collective under FSDP: every rank takes part
            policy, optimizer,
            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if rank == 0:
            _torch_save(optim_state, tmp / "optimizer.pt")
            _torch_save(scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **extra}, indent=2))
        _torch_save(_rng_state(), tmp / f"rng-rank{rank}.pt")
        _barrier()
        if rank == 0:
            if path.exists():  # the same step saved again (after a resume): swap, then delete
                os.rename(path, out_dir / f".old-checkpoint-{step}")
            os.rename(tmp, path)
            shutil.rmtree(out_dir / f".old-checkpoint-{step}", ignore_errors=True)
            for old in _folders(out_dir)[:-keep]:
                shutil.rmtree(old)
            if final:  # out_dir/final -> checkpoint-STEP, replaced atomically
                link = out_dir / ".final-tmp"
                link.unlink(missing_ok=True)
                link.symlink_to(path.name)
                os.replace(link, out_dir / "final")
    _barrier()
    return str(path)


@contextlib.contextmanager
def writing(out_dir, what, tmp=None):
    """The one handler of a failed write in a run folder (a full disk, a file system gone read-only
    or away) around save() and RunLogger: RunError in one line naming what failed and the newest
    complete checkpoint, which stays intact; the half-written folder `tmp` is removed."""
    try:
        yield
    except (OSError, SafetensorError) as err:  # SafetensorError: "I/O error: No space left on device"
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        reason = one_line(err)
        with contextlib.suppress(OSError):
            if "No space" not in reason and shutil.disk_usage(out_dir).free < 2**20:
                reason += "; the disk is full"
        last = latest(out_dir)
        raise RunError(f"writing {what} failed ({reason}); the latest complete checkpoint is "
                       f"{last or 'none'}" + ("; make room, then --resume" if last else "")) from None


def _torch_save(obj, file):
    """torch.save, whose failed write (a full disk) is a RuntimeError ("unexpected pos 576 vs 534")."""
    try:
        torch.save(obj, file)
    except RuntimeError as err:
        raise OSError(f"torch.save of {file} failed: {one_line(err)}") from None


# -----------------------------------------------------------------------------------------------
# Finding the checkpoint to resume from, and checking it before any model is loaded


def _folders(out_dir):
    """Checkpoint folders of a run, oldest first. A checkpoint-STEP folder only ever appears by the
    rename that completes it, so a file missing from one later was lost (problem)."""
    found = [(int(m.group(1)), p) for p in Path(out_dir).glob("checkpoint-*")
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest(out_dir):
    """The path of the newest checkpoint in out_dir, or None."""
    found = _folders(out_dir) if Path(out_dir).is_dir() else []
    return str(found[-1]) if found else None


FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng-rank0.pt",
         "config.json", "value_head.safetensors")  # and the weights, one file or shards


def problem(path):
    """What makes a checkpoint folder unusable for --resume, in one line, or None if it looks intact.

    Cheap, so it runs before any model is loaded: every file that save() writes must be there,
    every JSON file must parse, every safetensors header must describe exactly the bytes present
    (a truncated copy fails), every .pt must be a complete zip (torch.save's format, whose
    directory is at the very end). Values inside the files are not read here: load()
    and load_policy still fail with one line on what this cannot see.
        problem("runs/x/checkpoint-20") -> "runs/x/checkpoint-20/optimizer.pt is missing"
    """
    path = Path(path)
    weights, index = ["model.safetensors"], path / "model.safetensors.index.json"
    if index.exists():  # a large model is saved in shards, which the index names
        try:
            weights = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"{index} is corrupt"
    for name in [*FILES, *weights]:
        if not (path / name).is_file():
            return f"{path / name} is missing"
    for file in sorted(path.iterdir()):
        try:
            if file.suffix == ".json":
                json.loads(file.read_text())
            elif file.suffix == ".safetensors":
                with safe_open(file, "pt"):
                    pass
            elif file.suffix == ".pt":
                zipfile.ZipFile(file).close()
        except PermissionError:  # not damaged: another user's file, or one made unreadable
            return f"{file} cannot be read: permission denied"
        except (OSError, ValueError, RecursionError, zipfile.BadZipFile, SafetensorError) as err:
            return f"{file} is corrupt or truncated ({one_line(err)})"
    state = json.loads((path / "trainer_state.json").read_text())
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return f"{path / 'trainer_state.json'} holds no step"
    return None


def latest_intact(out_dir):
    """The checkpoint --resume continues from: the newest intact one in out_dir, or None if the run
    has none. A damaged newest checkpoint is named on stderr and the older kept one used instead;
    when every checkpoint is damaged it raises RunError, one line naming the files."""
    problems = []
    for path in reversed(_folders(out_dir) if Path(out_dir).is_dir() else []):
        if (why := problem(path)) is None:
            if problems and _rank() == 0:
                print(f"warning: {'; '.join(problems)}; resuming from the older {path} instead",
                      file=sys.stderr, flush=True)
            return str(path)
        problems.append(why)
    if problems:
        raise RunError(f"cannot resume {out_dir}, no intact checkpoint: {'; '.join(problems)}")
    return None


def resume_point(out_dir, args, method, keys):
    """The checkpoint a run of `method` ("sft", "ppo") continues from: with --resume, the newest
    intact one in `out_dir`, checked to be the same run (check_same_run; `keys` name it), or None
    when there is none; without --resume None, and a folder that already holds checkpoints is
    refused (RunError). A folder of the other method's run is refused either way, before anything
    is written."""
    other = _config(out_dir, strict=False).get("method")
    if isinstance(other, str) and other != method:
        raise RunError(f"{out_dir} is a {other} run folder (its config.json), not one of {method}.py: "
                       + (f"resume it with {other}.py" if args.resume else "choose another --out"))
    if not args.resume:
        if latest(out_dir):
            raise RunError(f"{out_dir} already holds checkpoints; pass --resume to continue it "
                           "or choose another --out")
        return None
    last = latest_intact(out_dir)
    if last is not None:
        check_same_run(out_dir, args, keys, done=json.loads((Path(last) / "trainer_state.json").read_text())["step"])
    return last


def init_flops(path, env=None, vision=None) -> float:
    """Training compute already in a checkpoint: the 'flops' sft.py / ppo.py store in its
    trainer_state.json (0 for a model without one); RunError when it holds no such number, or
    (env given) when check_task refuses the checkpoint."""
    if env is not None:
        check_task(path, env, vision)
    state = Path(path) / "trainer_state.json"
    if not state.is_file():
        return 0.0
    try:
        flops = float(json.loads(state.read_text()).get("flops", 0.0))
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as err:  # not JSON, not a dict, ...
        raise RunError(f"{state} cannot be read ({one_line(err)}); fix or delete it") from None
    if not (math.isfinite(flops) and flops >= 0):
        raise RunError(f"{state} gives flops {flops}; it must be a finite number >= 0")
    return flops


def check_task(path, env, vision) -> None:
    """RunError when the model folder `path` records another task than `env` / `vision`
    (trained_on): a V-IRL checkpoint is no start for GeneralPoints, nor is its compute that run's
    D_init. A folder that records nothing (a plain model, an old checkpoint) is accepted."""
    if (record := trained_on(path)) and (record[0] != env or record[1] not in (None, bool(vision))):
        task = f"{env}{' (vision)' if vision else ''}"
        raise RunError(f"{path} was trained on {record[0]}{' (vision)' if record[1] else ''} ({record[2]}), "
                       f"not on this run's {task}; start from a checkpoint of {task}")


def trained_on(path):
    """(env, vision or None, the file that says so) that a model folder records, or None: an
    init's card.json (inits/gp-l), or the config.json of the run that a checkpoint-STEP (or its
    final link) is part of. A folder that records nothing (a plain model) gives None."""
    folder = Path(path).resolve()
    files = [folder / "card.json"] + ([folder.parent / "config.json"]
                                      if re.fullmatch(r"checkpoint-\d+", folder.name) else [])
    for file in files:
        try:
            record = json.loads(file.read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("env"), str):
            vision = record.get("vision")
            return record["env"], vision if isinstance(vision, bool) else None, file
    return None


# What a --resume may change; every other setting that differs from config.json is refused, named.
# More steps (beyond the checkpoint's), a lower lr (the schedule goes on at its step, scaled), and
# what does not shape the training: how often it evaluates, saves and logs, threads, memory.
MAY_CHANGE = {"steps": "more", "updates": "more", "lr": "lower", "eval_every": "any", "eval_at": "any",
              "save_every": "any", "log_every": "any", "threads": "any", "micro_batch_size": "any",
              "length_groups": "any", "grad_checkpointing": "any"}
RECORD_ONLY = ("out", "resume", "method", "world_size", "num_params", "resumed_from", "resumes")  # not settings


def check_same_run(out_dir, args, keys, done=0):
    """RunError when --resume would continue out_dir with other settings than its config.json
    records: first the run's identity `keys` (e.g. env, seed: another task's or another run's
    checkpoint), then every other setting but those MAY_CHANGE allows; `done`: the checkpoint's step.
        --resume --lr 1e-3 of a 1e-4 run -> "--resume of runs/x cannot change --lr (0.0001 -> 0.001): ..."
    """
    saved, now = _config(out_dir), _as_json(vars(args))
    if changed := [k for k in keys if k in saved and saved[k] != now.get(k)]:
        raise RunError(f"--resume of {out_dir} with a different {', '.join(changed)} than the run's "
                       f"config.json ({', '.join(f'{k} {saved[k]!r}' for k in changed)})")
    refused = []
    for k in [*now, *(k for k in saved if k not in now)]:  # a key only in config.json: another script's flag
        before, after, rule = saved.get(k), now.get(k), MAY_CHANGE.get(k)
        if k not in saved or k in RECORD_ONLY or before == after or rule == "any":
            continue
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (before, after))
        if not (numbers and (rule == "more" and after > done or rule == "lower" and after < before)):
            refused.append(f"--{k.replace('_', '-')} ({before!r} -> {after!r})")
    if refused:
        rules = {"more": f"above the checkpoint's {done}", "lower": "lower", "any": ""}
        allowed = ", ".join(f"--{k.replace('_', '-')}{' ' * bool(rules[r])}{rules[r]}" for k, r in MAY_CHANGE.items()
                            if k in now)
        raise RunError(f"--resume of {out_dir} cannot change {', '.join(refused)}; a resume may change only "
                       f"{allowed}")


def _config(out_dir, strict=True):
    """The run's config.json as a dict ({} when there is none); unreadable: RunError, or {} when not strict."""
    path = Path(out_dir) / "config.json"
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as err:
        if not strict:
            return {}
        raise RunError(f"{path} cannot be read ({one_line(err)}); fix or delete it to resume") from None
    return saved


def _as_json(value):
    """`value` as config.json holds it (tuples become lists), to compare the two."""
    return json.loads(json.dumps(value))


def interrupted(out_dir, command):
    """The one line a Ctrl-C ends a run with (cli.main): the last step in its log, its newest
    checkpoint (a checkpoint folder appears complete or not at all) and the command to continue."""
    log, steps = Path(out_dir) / "metrics.jsonl", []
    for line in (log.read_text(errors="replace").splitlines() if log.is_file() else []):
        try:
            steps.append(int(json.loads(line)["step"]))
        except (ValueError, KeyError, TypeError, RecursionError):  # half a line, not a record
            continue
    last = latest(out_dir)
    then = (f"its newest checkpoint is {last}; continue with: {command}" if last else
            f"no checkpoint yet; start it again with: {command}")
    return f"interrupted (Ctrl-C) after step {max(steps, default=0)} of {out_dir}; {then}"


# -----------------------------------------------------------------------------------------------
# Loading: the optimizer, the scheduler and the random states (the weights are the policy folder's)


def load(path, policy, optimizer, scheduler, keys=()):
    """Restore the training state that save() wrote, around a policy loaded from `path`.

    The weights are restored by loading the policy from the checkpoint folder itself
    (policy = load_policy(path), then shard it as usual); this restores the optimizer, the
    scheduler and this rank's random states, and returns trainer_state.json (step, extra), which
    must hold `keys`. Every rank calls it; rank 0 reads the optimizer state and broadcasts it. A
    file that cannot be read raises RunError naming it (latest_intact has checked the obvious).
    """
    path, rank, lrs = Path(path), _rank(), list(scheduler.base_lrs)  # this run's lrs (a resume may lower them)
    try:
        optim_state = _load_pt(path / "optimizer.pt") if rank == 0 else {}
        # strict=False: parameters that never got a gradient (the vision tower in a text-only run)
        # have no Adam state to restore
        set_optimizer_state_dict(policy, optimizer, optim_state,
                                 options=StateDictOptions(full_state_dict=True, strict=False,
                                                          broadcast_from_rank0=dist.is_initialized()))
        scheduler.load_state_dict(_load_pt(path / "scheduler.pt"))
        rng_file = path / f"rng-rank{rank}.pt"
        if rng_file.exists():  # absent when resuming on more ranks than the run was saved with
            _set_rng_state(_load_pt(rng_file))
    except ValueError as err:
        raise RunError(f"cannot resume from {path}: {err}") from None
    # the schedule goes on from its step with this run's lrs (LambdaLR: lr = base lr x multiplier(step))
    for group, lr, multiplier in zip(optimizer.param_groups, lrs, scheduler.lr_lambdas):
        group["initial_lr"], group["lr"] = lr, lr * multiplier(scheduler.last_epoch)
    scheduler.base_lrs, scheduler._last_lr = lrs, [group["lr"] for group in optimizer.param_groups]
    state = json.loads((path / "trainer_state.json").read_text())
    if missing := [k for k in ("step", *keys) if k not in state]:
        raise RunError(f"cannot resume from {path}: its trainer_state.json has no {missing[0]!r}")
    return state


def _load_pt(file):
    """torch.load of a checkpoint file, weights only (a pickle never runs code); ValueError with one
    line naming the file when it cannot be read."""
    try:
        return torch.load(file, weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"{file}: refused, it holds more than tensors (torch.load weights_only)") from None
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{file} is corrupt or truncated ({one_line(err)})") from None


# -----------------------------------------------------------------------------------------------
# Random states: seeded once, saved with every checkpoint, restored on resume


def seed_everything(seed):
    """Seed python, numpy and torch (seeded, not bit-exact on GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state()[1].tolist(),
             "numpy_pos": int(np.random.get_state()[2]), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -----------------------------------------------------------------------------------------------
# The run log


class RunLogger:
    """The run log that plots.py reads: runs/NAME/config.json and runs/NAME/metrics.jsonl (and any
    other JSONL log named in `logs`, e.g. ppo.py's samples.jsonl).

    Only rank 0 writes. A fresh run starts each log empty; a resumed run (resume_step given) keeps
    the lines up to the checkpoint's step and drops what the killed run logged after it, since
    those steps are trained again.
    """

    def __init__(self, out_dir, config, rank, resume_step=None, logs=("metrics.jsonl",)):
        self.out_dir, self.path = Path(out_dir), Path(out_dir) / logs[0]
        self.enabled = rank == 0
        if not self.enabled:
            return
        with writing(self.out_dir, self.out_dir / "config.json"):  # renamed over: a full disk keeps the old
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if resume_step is not None:  # config.json: the settings now, after a record of every resume
                saved = _config(out_dir)
                changed = {k: [saved[k], v] for k, v in _as_json(config).items()
                           if k in saved and k not in RECORD_ONLY and saved[k] != v}
                config = {**config, "resumes": [*saved.get("resumes", []),
                                                {"step": resume_step, **({"changed": changed} if changed else {})}]}
            write_atomic(self.out_dir / "config.json", json.dumps(config, indent=2) + "\n")
        for path in (self.out_dir / name for name in logs):
            resumed = resume_step is not None and path.exists()
            with writing(self.out_dir, path):
                write_atomic(path, lines_up_to(path, resume_step) if resumed else "")

    def log(self, record, name="metrics.jsonl"):
        """Append one JSON line to log `name` (flushed at once, so a killed run loses nothing logged)."""
        if self.enabled:  # a full disk: RunError; a half-written line is dropped on --resume
            with writing(self.out_dir, self.out_dir / name), open(self.out_dir / name, "a") as f:
                f.write(json.dumps(record) + "\n")


def lines_up_to(path, step):
    """The lines of a JSONL log (metrics.jsonl, ppo.py's samples.jsonl) whose "step" is at most
    `step`, for a resumed run: what the killed run logged after its checkpoint is done again.
    A half-written last line (kill -9 mid-write) is dropped, with any other line that does not parse."""
    kept = []
    for line in Path(path).read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        logged_at = record.get("step", 0) if isinstance(record, dict) else None
        if isinstance(logged_at, (int, float)) and logged_at <= step:
            kept.append(line + "\n")
    return "".join(kept)


# -----------------------------------------------------------------------------------------------
# Helpers: the rank under torchrun


def _rank():
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier():
    if dist.is_initialized():
        dist.barrier()
