"""Bad input, every command: exit code 2, one line on stderr, no traceback, no warning, nothing written.

Each case is one command line that differs from a working one (``test_bases_work``) in one
option or one file. The CLI runs in-process; a case passes when ``main`` returns 2 (or argparse
exits 2), stderr is exactly one ``workbench: error:`` line, no Python warning was issued and no
file appeared or changed anywhere: not in the working folder, not in the bad files, not in the
temporary folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from workbench.cli import main

OUT = "{OUT}"
A = "{A}"

INVERT = ["invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--iters", "1", "--restarts", "1",
          "--fine-tune", "0", "--device", "cpu", "--quiet", "--out", OUT]
MAXIMIZE = ["maximize", "--model", "digits-vgg", "--layer", "relu1", "--channel", "0", "--iters", "1", "--restarts", "1",
            "--device", "cpu", "--quiet", "--out", OUT]
CARICATURE = ["caricature", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--iters", "1",
              "--restarts", "1", "--device", "cpu", "--quiet", "--out", OUT]
DEMO = ["demo", "--iters", "1", "--device", "cpu", "--out", OUT]
DEFORM = ["deform", "--model", "digits-vgg", "--n", "2", "--seeds", "1", "--device", "cpu", "--quiet", "--out", OUT]
SMOOTHNESS = ["smoothness", "--model", "digits-vgg"]
STUDY = ["study", "smoothing", "--seeds", "1", "--n", "2", "--device", "cpu", "--quiet", "--out", OUT]
LAYERS = ["layers", "--model", "digits-vgg"]
ZOO = ["zoo", "train", "digits-lenet5", "--epochs", "1", "--limit", "8", "--device", "cpu", "--quiet", "--out", OUT]
TRAIN = ["filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--steps", "1", "--latent-dim", "2",
         "--batch-size", "2", "--train-images", "4", "--device", "cpu", "--quiet", "--out", OUT]
RESUME = ["filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--steps", "2001", "--resume",
          "--device", "cpu", "--quiet", "--out", f"{A}/gan-ok"]
EVAL = ["filtergan", "eval", f"{A}/gan-ok", "--filter-sets", "1", "--retrain-epochs", "0", "--mds-samples", "2",
        "--train-images", "4", "--device", "cpu", "--quiet"]
TRAVERSE = ["filtergan", "traverse", f"{A}/gan-ok", "--grid", "3", "--iters", "1", "--device", "cpu", "--quiet",
            "--out", OUT]

BASES = {"invert": INVERT, "maximize": MAXIMIZE, "caricature": CARICATURE, "demo": DEMO, "deform": DEFORM,
         "smoothness": SMOOTHNESS, "study": STUDY, "layers": LAYERS, "zoo": ZOO, "train": TRAIN, "eval": EVAL,
         "traverse": TRAVERSE}


def with_(base: list[str], option: str, *values: str) -> list[str]:
    """``base`` with ``option`` set to ``values`` (replaced where present, else added before --out)."""
    argv = list(base)
    if option in argv:
        i = argv.index(option)
        end = i + 1
        while end < len(argv) and not (argv[end].startswith("--") and len(argv[end]) > 2):
            end += 1
        argv[i + 1:end] = list(values)
    else:
        at = argv.index("--out") if "--out" in argv else len(argv)
        argv[at:at] = [option, *values]
    return argv


def image(base: list[str], path: str) -> list[str]:
    """``base`` with ``--image path`` instead of its ``--sample``."""
    argv = list(base)
    argv[argv.index("--sample"):argv.index("--sample") + 2] = ["--image", path]
    return argv


def run_dir(base: list[str], folder: str) -> list[str]:
    """``base`` (eval or traverse) on another run folder."""
    argv = list(base)
    argv[2] = folder
    return argv


def _names(token: str) -> set[str]:
    """How a message may name ``token``: an option without its dashes, a path by its file name."""
    bare = token.lstrip("-") if token.startswith("--") or token in ("-C",) else token
    name = bare.rsplit("/", 1)[-1] if "/" in bare else bare
    return {v for v in (bare, name, name.replace("-", "_"), name.replace("-", " ")) if v}


def says(argv: list[str]) -> tuple[str, ...]:
    """What a refusal of ``argv`` must name (any one of): the tokens by which it differs from the working
    command line it was made from (the option, its value, the file) — a message that names none of them
    does not say what is wrong."""
    from difflib import SequenceMatcher

    bases = [b for b in BASES.values() if b[:1] == argv[:1] and (argv[0] != "filtergan" or b[1:2] == argv[1:2])]
    if not bases:
        return tuple(sorted({n for t in argv for n in _names(t)}))
    base = min(bases, key=lambda b: len(set(b) ^ set(argv)))
    changed: set[str] = set()
    for op, i1, i2, j1, j2 in SequenceMatcher(a=base, b=argv, autojunk=False).get_opcodes():
        if op == "delete":
            changed.update(base[i1:i2])          # an option left out
        elif op != "equal":
            changed.update(argv[j1:j2])          # a new option or value, a bad file
            if op == "replace" and j1 > 0 and argv[j1 - 1].startswith("-"):
                changed.add(argv[j1 - 1])        # the option whose value changed
    named = {n for t in changed - {OUT} for n in _names(t)}
    words = {n for n in named if not _weak(n)}
    return tuple(sorted(words or named))


def _weak(name: str) -> bool:
    """A number or a fragment that would be found in almost any line: it names an option only with it."""
    return len(name.strip(" _-")) < 2 and not name.isalpha() or name.strip(" _-").lstrip("-").replace(".", "").isdigit()


def _cases() -> list:
    c: list = []

    def add(name: str, argv: list[str], *named: str) -> None:
        """A case whose one line must name one of ``named`` (by default :func:`says` of ``argv``)."""
        c.append(pytest.param(argv, named or says(argv), id=name))

    # the parser itself
    add("unknown-option", ["--bogus"])
    add("unknown-command", ["frobnicate"])
    add("invert-missing-model", ["invert", "--layer", "relu1", "--out", OUT], "--model")
    add("invert-iters-text", with_(INVERT, "--iters", "abc"))
    add("invert-restarts-float", with_(INVERT, "--restarts", "1.5"))
    add("invert-schedule-unknown", with_(INVERT, "--schedule", "parallel"))
    add("filtergan-no-action", ["filtergan"], "ACTION")
    add("study-unknown", ["study", "nope", "--out", OUT])
    add("deform-grid-float", with_(DEFORM, "--grid", "3.5"))
    add("deform-preset-unknown", with_(DEFORM, "--preset", "mnist"))

    # numbers of the pre-image engine
    for opt, values in (("--alpha", ("inf", "nan", "0", "-1", "1e308", "-inf")),
                        ("--beta", ("1e308", "nan", "0", "-2", "inf")),
                        ("-C", ("0", "-3", "inf", "nan", "1e308")),
                        ("--B", ("nan", "0", "-1", "inf")),
                        ("--jitter", ("0", "-1", "1000000")),
                        ("--iters", ("0", "-1", str(10**12))),
                        ("--restarts", ("0", "-2", "1000000")),
                        ("--fine-tune", ("-1", str(10**12))),
                        ("--seed", (str(2**70), "-1")),
                        ("--frames", ("-1",)),
                        ("--window", ("0", "-1")),
                        ("--channels", ("-1", "99999"))):
        for v in values:
            add(f"invert{opt}={v}", with_(INVERT, opt, v))
    add("invert-restarts-frames-memory", with_(with_(with_(INVERT, "--restarts", "90000"), "--frames", "1"), "--iters", "1000"))
    for dev in ("cuda:x", "cpu:0:1", "", "gpu", "cuda:99", "cpu:-1", "CPU"):
        add(f"invert-device={dev!r}", with_(INVERT, "--device", dev))
    # reference images
    for name in ("missing.png", "folder.png", "empty.png", "text.png", "truncated.png", "bomb.png", "big.png",
                 "over.png", "missing-noext", "textdir"):
        add(f"invert-image={name}", image(INVERT, f"{A}/{name}"))
    for spec in ("digits:99999", "digits:-1", "digits:abc", "digits:", "digits:1e3", "nope-sample", "",
                 f"{A}/bomb.png", f"{A}/textdir"):
        add(f"invert-sample={spec.replace(A, 'A')!r}", with_(INVERT, "--sample", spec))
    # models
    for model in ("no-such-model", "empty.safetensors", "empty.pt", "random.safetensors", "random.pt",
                  "truncated.safetensors", "model.json", "text.pt", "dir.safetensors", "missing.safetensors",
                  "hugeheader.safetensors", "sidecar/net.safetensors", "badsidecar/net.safetensors"):
        spec = model if model == "no-such-model" else f"{A}/{model}"
        named = ("net.json",) if model == "badsidecar/net.safetensors" else ()  # the sidecar is what is bad
        add(f"invert-model={model}", with_(INVERT, "--model", spec), *named)
        add(f"layers-model={model}", with_(LAYERS, "--model", spec), *named)
    add("invert-arch-mismatch", with_(with_(INVERT, "--model", f"{A}/vgg.safetensors"), "--arch", "digits-lenet5"))
    add("invert-arch-unknown", with_(with_(INVERT, "--model", f"{A}/vgg.safetensors"), "--arch", "resnet9000"))
    add("layers-arch-mismatch", with_(with_(LAYERS, "--model", f"{A}/vgg.safetensors"), "--arch", "digits-lenet5"))
    add("invert-layer-unknown", with_(INVERT, "--layer", "conv99"))
    add("invert-layer-empty", with_(INVERT, "--layer", ""))
    for where in ("file.txt", "nonempty", "file.txt/sub"):
        for name, base in (("invert", INVERT), ("maximize", MAXIMIZE), ("caricature", CARICATURE), ("demo", DEMO),
                           ("deform", DEFORM), ("study", STUDY), ("train", TRAIN), ("traverse", TRAVERSE)):
            add(f"{name}-out={where}", with_(base, "--out", f"{A}/{where}"))
    add("zoo-out=file.txt", with_(ZOO, "--out", f"{A}/file.txt"))
    add("zoo-out=file.txt/sub", with_(ZOO, "--out", f"{A}/file.txt/sub"))

    # maximize and caricature
    add("maximize-channel-99999", with_(MAXIMIZE, "--channel", "99999"))
    add("maximize-channel--1", with_(MAXIMIZE, "--channel", "-1"))
    add("maximize-neuron-999-999", with_(MAXIMIZE, "--neuron", "999", "999"))
    add("maximize-neuron--1-0", with_(MAXIMIZE, "--neuron", "-1", "0"))
    add("maximize-alpha-nan", with_(MAXIMIZE, "--alpha", "nan"))
    add("maximize-layer-unknown", with_(MAXIMIZE, "--layer", "fc99"))
    add("caricature-image-bomb", image(CARICATURE, f"{A}/bomb.png"))
    add("caricature-image-textnoext", image(CARICATURE, f"{A}/textnoext"))
    add("caricature-C-inf", with_(CARICATURE, "-C", "inf"))
    add("demo-model-unknown", with_(DEMO, "--model", "no-such-model"))
    add("demo-iters-0", with_(DEMO, "--iters", "0"))
    add("demo-device-gpu", with_(DEMO, "--device", "gpu"))

    # deformation sensitivity
    for opt, values in (("--grid", ("1", "0", "-1", "200")),
                        ("--max-disp", ("inf", "nan", "-1", "1e308")),
                        ("--n", ("0", "1", "-5", str(10**12))),
                        ("--batch-size", ("0", str(10**9))),
                        ("--seeds", ("0", str(10**12))),
                        ("--seed", ("-1", str(2**70))),
                        ("--layers", ("nope", ",")),
                        ("--init", ("nope", "gaussian:abc", "gaussian:-1", "gaussian:inf")),
                        ("--device", ("gpu", "cuda:x")),
                        ("--model", ("no-such-model",))):
        for v in values:
            add(f"deform{opt}={v}", with_(DEFORM, opt, v))
    for folder in ("emptydir", "textdir", "onepng", "badpngs", "bombs", "missing-folder", "file.txt"):
        add(f"deform-images={folder}", with_(DEFORM, "--images", f"{A}/{folder}"))
    add("deform-model-empty", with_(DEFORM, "--model", f"{A}/empty.pt"))
    for opt, v in (("--model", "no-such-model"), ("--init", "nope"), ("--init", "gaussian:nan"), ("--seed", "-1"),
                   ("--seed", str(2**70)), ("--model", f"{A}/random.pt")):
        add(f"smoothness{opt}={v.replace(A, 'A')}", with_(SMOOTHNESS, opt, v))
    for opt, v in (("--seeds", "0"), ("--seeds", "-1"), ("--n", "0"), ("--n", "1"), ("--epochs", "-1"),
                   ("--n", str(10**9)), ("--device", "gpu")):
        add(f"study{opt}={v}", with_(STUDY, opt, v))

    # model zoo
    add("zoo-unknown", ["zoo", "train", "no-such-model", "--out", OUT])
    for opt, v in (("--epochs", "0"), ("--epochs", "-1"), ("--limit", "0"), ("--seed", "-1"), ("--seed", str(2**70)),
                   ("--device", "gpu")):
        add(f"zoo{opt}={v}", with_(ZOO, opt, v))

    # filter-GAN training
    for opt, values in (("--steps", ("0", "-1", str(10**12))),
                        ("--latent-dim", ("0", str(10**9))),
                        ("--batch-size", ("0", str(10**9))),
                        ("--lr", ("nan", "-1", "0", "inf")),
                        ("--lambda-info", ("nan", "-1", "inf")),
                        ("--seed", (str(2**70), "-1")),
                        ("--checkpoint-every", ("0",)),
                        ("--train-images", ("0", "-1")),
                        ("--layer", ("relu4", "conv99")),
                        ("--model", ("no-such-model", f"{A}/random.safetensors")),
                        ("--device", ("cuda:x", ""))):
        for v in values:
            add(f"train{opt}={v.replace(A, 'A')!r}", with_(TRAIN, opt, v))
    for folder in ("gan-ok", "gan-ckpt-corrupt", "gan-ckpt-empty", "gan-corrupt-json", "gan-list-json",
                   "gan-config-null", "gan-latent-string", "gan-wrong-kind", "gan-no-runjson", "missing-folder", "file.txt"):
        add(f"resume-{folder}", with_(RESUME, "--out", f"{A}/{folder}"), *INSIDE.get(folder, ()))

    # filter-GAN evaluation and traversal: run folders
    for folder in ("missing-folder", "file.txt", "gan-no-runjson", "gan-empty-json", "gan-corrupt-json",
                   "gan-list-json", "gan-string-json", "gan-null-json", "gan-binary-json", "gan-no-kind",
                   "gan-wrong-kind", "gan-config-null", "gan-config-list", "gan-config-string", "gan-latent-string",
                   "gan-latent-negative", "gan-latent-float", "gan-latent-huge", "gan-hidden-huge", "gan-rank-huge",
                   "gan-hidden-null", "gan-hidden-bool", "gan-unknown-key", "gan-model-unknown", "gan-model-number",
                   "gan-layer-missing", "gan-layer-relu", "gan-generator-kind", "gan-shape-mismatch",
                   "gan-gen-missing", "gan-gen-empty", "gan-gen-random", "gan-gen-text", "gan-gen-json",
                   "gan-gen-truncated", "gan-gen-dir", "gan-gen-hugeheader", "gan-ckpt-corrupt"):
        inside = INSIDE.get(folder, ())  # what is wrong inside the folder, where the message names that
        add(f"eval-{folder}", run_dir(EVAL, f"{A}/{folder}"), *inside)
        add(f"traverse-{folder}", run_dir(TRAVERSE, f"{A}/{folder}"), *inside)
    for opt, v in (("--filter-sets", "0"), ("--filter-sets", "-1"), ("--filter-sets", str(10**9)),
                   ("--retrain-epochs", "-1"), ("--mds-samples", "0"), ("--mds-samples", "1"),
                   ("--mds-samples", str(10**9)), ("--train-images", "0"), ("--seed", "-1"), ("--seed", str(2**70)),
                   ("--device", "gpu")):
        add(f"eval{opt}={v}", with_(EVAL, opt, v))
    for opt, values in (("--grid", ("4", "1", "0", "999")),
                        ("--dims", (("99", "99"), ("0", "0"), ("-1", "2"), ("0", "99"))),
                        ("--xi", ("nan", "inf", "0", "-1", "1e308")),
                        ("--iters", ("0", str(10**12))),
                        ("-C", ("0", "nan", "-1")),
                        ("--resolution", ("1", "-1", "1000000")),
                        ("--seed", (str(2**70),)),
                        ("--sample", ("digits:99999", f"{A}/bomb.png", "nope", f"{A}/empty.png", f"{A}/folder.png")),
                        ("--device", ("cuda:x",))):
        for v in values:
            vals = v if isinstance(v, tuple) else (v,)
            add(f"traverse{opt}={' '.join(vals).replace(A, 'A')}", with_(TRAVERSE, opt, *vals))
    return c


#: Run folders whose refusal names what is wrong inside them (the model, the layer) rather than the folder.
INSIDE = {"gan-model-unknown": ("no-such-model",), "gan-layer-missing": ("conv99",), "gan-layer-relu": ("relu4",),
          "gan-latent-string": ("gan-latent-string", "latent_dim")}
CASES = _cases()


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``folders`` with its size and modification time (torch's own compile cache aside)."""
    out = {}
    for folder in folders:
        for p in folder.rglob("*"):
            if p.relative_to(folder).parts[0].startswith("torchinductor_"):
                continue
            st = p.lstat()
            out[str(p)] = (st.st_size if p.is_file() else -1, st.st_mtime_ns if p.is_file() else 0)
    return out


def _fill(argv: list[str], assets: Path, out: Path) -> list[str]:
    return [a.replace(A, str(assets)).replace(OUT, str(out)) for a in argv]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh working folder (the default ``runs/`` would appear here) and a private temporary folder."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return cwd, tmp


def run_cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """``main(argv)`` in-process: exit code, stderr, the warnings a user would have seen on stderr."""
    hidden = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse: its one line is already on stderr
            rc = exc.code
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, hidden)]
    return rc, capsys.readouterr().err, shown


def assert_refused(rc: int, err: str, shown: list[str], named: tuple[str, ...] | str = ()) -> None:
    """Refused as bad input: exit code 2, one ``workbench: error:`` line, no traceback, no warning; and
    the line names what is wrong — one of ``named`` (an option, a value, a file), case aside."""
    lines = err.splitlines()
    assert "Traceback" not in err, err
    assert rc == 2, f"exit code {rc}; stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("workbench: error: ") and len(lines[0]) > 25, err
    assert not shown, shown
    named = (named,) if isinstance(named, str) else tuple(named)
    if named:
        said = lines[0].removeprefix("workbench: error: ")
        assert any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", said, re.IGNORECASE)
                   for n in named), f"{said!r} names none of {named}"


@pytest.mark.parametrize("argv, named", CASES)
def test_bad_input(argv, named, assets, workspace, capsys):
    cwd, tmp = workspace
    before = _snapshot(assets, cwd, tmp)
    rc, err, shown = run_cli(_fill(argv, assets, cwd / "out"), capsys)
    assert_refused(rc, err, shown, named)
    assert _snapshot(assets, cwd, tmp) == before, "the failed command wrote or changed files"


def test_there_are_at_least_100_distinct_bad_inputs():
    ids = [p.id for p in CASES]
    assert len(set(ids)) == len(ids)
    assert len({tuple(p.values[0]) for p in CASES}) == len(CASES) >= 100


@pytest.mark.parametrize("name", list(BASES))
def test_bases_work(name, assets, workspace, capsys):
    """Each bad case changes one thing in one of these, and these succeed (so the refusal is the change's)."""
    cwd, _ = workspace
    argv = BASES[name]
    if name in ("eval", "traverse", "resume"):
        shutil.copytree(assets / "gan-ok", cwd / "gan")
        argv = [a.replace(f"{A}/gan-ok", str(cwd / "gan")) for a in argv]
    rc, err, shown = run_cli(_fill(argv, assets, cwd / "out"), capsys)
    assert rc == 0, err
    assert "Traceback" not in err and not shown


def test_extensionless_image_file_is_read(assets):
    from workbench.data.images import load_reference

    image, label = load_reference(str(assets / "noext"), (1, 32, 32))
    assert image.shape == (32, 32, 1) and label is None
    assert 0.0 <= image.min() < image.max() <= 1.0
    digit, label = load_reference("digits:3", (3, 16, 16))
    assert digit.shape == (16, 16, 3) and label in range(10)
