"""The intra-op thread policy: one thread for small problems, all cores for large ones."""

import threading

import pytest
import torch

from workbench.errors import UserError
from workbench.threads import ENV, LARGE_WORK, SPARE_CORES, available_cores, intra_op_threads, job_threads, torch_threads

QUIET = {}   # an environment that sets neither WORKBENCH_THREADS nor OMP_NUM_THREADS


@pytest.mark.parametrize("work, expected", [(1, 1), (1024, 1), (LARGE_WORK - 1, 1), (LARGE_WORK, 5), (10**9, 5)])
def test_small_work_gets_one_thread_and_large_work_every_core_but_one(work, expected):
    assert intra_op_threads(work, cores=6, environ=QUIET) == expected


def test_large_work_leaves_one_of_the_cores_this_process_may_use_to_its_neighbours():
    assert SPARE_CORES == 1
    assert intra_op_threads(LARGE_WORK, environ=QUIET) == max(1, available_cores() - 1)
    assert intra_op_threads(LARGE_WORK, cores=2, environ=QUIET) == 1   # the 2-core VM: a 224² job on one thread
    assert intra_op_threads(LARGE_WORK, cores=16, environ=QUIET) == 15
    assert intra_op_threads(LARGE_WORK, cores=1, environ=QUIET) == 1
    assert intra_op_threads(LARGE_WORK, cores=0, environ=QUIET) == 1


@pytest.mark.parametrize("size, batch, expected", [
    ((1, 32, 32), 1, 1),         # a digits-vgg pre-image
    ((1, 32, 32), 16, 1),        # a filter-GAN step (m = 16)
    ((1, 32, 32), 64, 1),        # a deform batch of digits
    ((1, 32, 32), 128, 7),       # 131 072 values: past the threshold, one core left free
    ((3, 224, 224), 1, 7),       # one vgg16 or efficientnet-lite0 pre-image
    ((3, 224, 224), 0, 7),       # a batch of none counts as one
])
def test_job_threads_counts_the_values_of_one_forward_pass(size, batch, expected):
    assert job_threads(size, batch, cores=8, environ=QUIET) == expected


@pytest.mark.parametrize("environ, expected", [
    ({ENV: "3"}, 3),
    ({ENV: " 5 "}, 5),
    ({ENV: "3", "OMP_NUM_THREADS": "7"}, 3),     # ours wins over OpenMP's
    ({"OMP_NUM_THREADS": "7"}, 7),
    ({"OMP_NUM_THREADS": "4,2"}, 4),             # a nested list: the outer level
    ({"OMP_NUM_THREADS": "many"}, 1),            # not ours to judge: the policy decides
    ({"OMP_NUM_THREADS": "0"}, 1),
    ({ENV: ""}, 1),                              # set but empty: as if unset
])
def test_the_environment_overrides_the_policy(environ, expected):
    assert intra_op_threads(10, cores=6, environ=environ) == expected
    assert intra_op_threads(10**7, cores=6, environ=environ) == (5 if expected == 1 else expected)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "2 threads"])
def test_a_bad_override_is_one_line_naming_the_variable(value):
    with pytest.raises(UserError) as info:
        intra_op_threads(10, cores=2, environ={ENV: value})
    message = str(info.value)
    assert ENV in message and repr(value) in message and "\n" not in message


def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    monkeypatch.setenv(ENV, "3")
    assert intra_op_threads(10) == 3
    monkeypatch.setenv(ENV, "zero")
    with pytest.raises(UserError):
        job_threads((1, 32, 32))


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_torch_threads_sets_the_count_and_restores_the_previous_one(two_threads):
    with torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_torch_threads_restores_the_count_after_an_exception(two_threads):
    with pytest.raises(KeyError):
        with torch_threads(1):
            raise KeyError("boom")
    assert torch.get_num_threads() == 2


def test_torch_threads_restores_the_count_when_a_generator_is_closed(two_threads):
    def job():
        with torch_threads(1):
            while True:
                yield torch.get_num_threads()

    steps = job()
    assert next(steps) == 1
    steps.close()
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("n", [0, -2, 1.5, "2", None])
def test_torch_threads_refuses_what_is_not_a_count(two_threads, n):
    with pytest.raises(ValueError):
        with torch_threads(n):
            pass
    assert torch.get_num_threads() == 2


def test_the_count_belongs_to_the_thread_that_sets_it(two_threads):
    """Why the job, not its caller, must enter torch_threads: OpenMP counts are per thread."""
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def worker():
        with torch_threads(1):
            seen["worker"] = torch.get_num_threads()
            entered.set()
            release.wait(10)
        seen["worker after"] = torch.get_num_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    entered.wait(10)
    seen["main"] = torch.get_num_threads()
    release.set()
    thread.join(10)
    assert seen == {"worker": 1, "main": 2, "worker after": 2}


def test_a_job_given_a_thread_count_computes_on_it(two_threads, monkeypatch, tmp_path):
    """A sweep cell's count is passed as a value (no WORKBENCH_THREADS in os.environ): the job steps on it."""
    from workbench.config.preimage import PreimageConfig
    from workbench.jobs import Step, run_job
    from workbench.models import load_model
    from workbench.preimage.solve import preimage_job

    monkeypatch.delenv(ENV, raising=False)
    torch.set_num_threads(1)
    seen = []
    config = PreimageConfig(model="digits-vgg", layer="relu1", image="digits:0", restarts=1, iters=3,
                            fine_tune_iters=0, device="cpu", snapshot_every=0, frame_every=0)
    job = preimage_job(config, out=tmp_path / "run", model=load_model("digits-vgg"), threads=2)
    run_job(job, lambda e: seen.append(torch.get_num_threads()) if isinstance(e, Step) else None)
    assert seen and set(seen) == {2} and ENV not in __import__("os").environ
    assert torch.get_num_threads() == 1  # given back after the job
