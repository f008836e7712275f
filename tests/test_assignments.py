"""ASSIGNMENTS.md's exercises work as handed out: with the function a student rewrites blanked
(its body replaced by `raise NotImplementedError`, or returning zeros), the exercise's test fails;
with the project's own function it passes. The exercises are read from ASSIGNMENTS.md itself."""
import importlib
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REWRITE = re.compile(r"^\*\*Rewrite:\*\* `(\w+)\.(\w+)`", re.M)
TEST = re.compile(r"^\*\*Test:\*\* `tests/(\w+)\.py::(\w+)`", re.M)


def exercises():
    """[(module name, function name, test module name, test name)] in ASSIGNMENTS.md's order."""
    text = (ROOT / "ASSIGNMENTS.md").read_text()
    rewrites, tests = REWRITE.findall(text), TEST.findall(text)
    assert len(rewrites) == len(tests) >= 4, "each exercise names one function and one test"
    return [(*r, *t) for r, t in zip(rewrites, tests)]


def raises(*args, **kwargs):
    raise NotImplementedError("the student's exercise")


def zeros(*args, **kwargs):
    """A blank that runs: zero tensors shaped like the first argument (zero loss, zero advantages)."""
    first = torch.zeros_like(args[0]) if args and torch.is_tensor(args[0]) else torch.tensor(0.0)
    return first, first


EXERCISES = exercises()


@pytest.mark.filterwarnings("ignore::UserWarning")  # a zeros blank's stats are indexed as a dict
@pytest.mark.parametrize("module,function,test_module,test", EXERCISES, ids=[e[1] for e in EXERCISES])
@pytest.mark.parametrize("blank", [raises, zeros], ids=["raises", "zeros"])
def test_blank_function_fails_its_test_and_the_project_code_passes(module, function, test_module, test, blank,
                                                                    monkeypatch):
    mod, check = importlib.import_module(module), getattr(importlib.import_module(test_module), test)
    assert callable(getattr(mod, function)), f"{module}.{function} does not exist"
    check()  # the project's code passes
    monkeypatch.setattr(mod, function, blank)
    with pytest.raises(Exception):  # an AssertionError, or the blank's own error where it is called
        check()
