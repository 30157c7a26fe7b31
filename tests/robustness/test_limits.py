"""The shared number checks and the memory guard (workbench.limits)."""

import math

import pytest

from workbench import limits
from workbench.errors import UserError


@pytest.mark.parametrize("value", [True, 1.5, "3", None, [1]])
def test_integer_refuses_what_is_not_a_whole_number(value):
    with pytest.raises(UserError, match="--n must be a whole number"):
        limits.integer("--n", value, 1)


@pytest.mark.parametrize("value, needle", [(math.nan, "finite"), (math.inf, "finite"), (-math.inf, "finite"),
                                           (0.0, "positive"), (-1.0, "positive"), (2e3, "at most 1000"),
                                           ("1", "a number")])
def test_real_refuses_non_finite_and_out_of_range(value, needle):
    with pytest.raises(UserError, match=needle):
        limits.real("--xi", value, high=1000.0, positive=True)


def test_bounds_are_inclusive_and_seed_is_32_bit():
    assert limits.integer("--grid", 15, 3, 15) == 15
    assert limits.real("--max-disp", 0, 0.0, 10.0) == 0.0
    assert limits.seed("--seed", 2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 2**70):
        with pytest.raises(UserError, match="--seed must be at"):
            limits.seed("--seed", bad)


def test_memory_guard_names_the_estimate_and_the_limit(monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda device=None: (10 * 2**30, "available memory"))
    limits.require_memory(7 * 2**30, "a small job", "lower --restarts")     # under 80 % of 10 GiB
    with pytest.raises(UserError) as exc:
        limits.require_memory(12.5 * 2**30, "1000000 restarts of relu1", "lower --restarts")
    message = str(exc.value)
    assert message == ("1000000 restarts of relu1 would need ~12.5 GiB (limit 8.0 GiB: 80 % of the available memory); "
                       "lower --restarts")


def test_available_memory_reads_this_machine():
    nbytes, source = limits.available_memory()
    assert 2**26 < nbytes < 2**50 and source == "available memory"
