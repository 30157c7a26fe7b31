"""The lecture's experiments ("Visualising the filters", Tanner, C6.5 video 12) at a size that fits a
2-core CPU, on the bundled digits (1347 train / 450 test, 32×32).

- ``one-layer`` (Raghu et al. 2016, Fig. 6, on the slide "similarity and importance of initial
  layers"): a network of which exactly one layer is trained, all others frozen at their random
  initialisation; train and test accuracy against which layer was trained. For a fully connected
  net as on the slide (:func:`fully_connected`: 1024 → 6 hidden layers of 100 ReLUs → 10) and for
  ``digits-vgg`` (its architecture, freshly initialised). The study checks its own premise: the
  SHA-256 of every parameter before and after each training, and metrics.json lists the ones that
  changed (only the trained layer's weight and bias may).
- ``wavelet-first-layer`` (the slide "Initial layers can start as representations for the data
  class"): h₂ = σ_τ(W⁽¹⁾x) with W⁽¹⁾ a fixed undecimated wavelet frame (several PyWavelets families and
  levels, :class:`~workbench.filters.wavelets.WaveletFrame`) and σ_τ the slide's hard or soft
  threshold; a linear classifier W⁽²⁾ learned on the sparse codes h₂. Accuracy and the sparsity of the
  codes (the fraction that are zero) against τ, beside a learned first layer of the same width
  (trained end to end with the same classifier) and a linear classifier on the pixels.

Each study is a job writing one run folder: ``metrics.json`` and ``images/*.png`` with a ``.pdf``
of each plot. The trainings run one after another in this process (each is seconds to a minute).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np
import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, Event, Log, Step, relay
from workbench.studies.common import STUDY_BATCH, STUDY_INPUT, study_job
from workbench.threads import job_threads

#: The studies' default sizes, measured on the shared 2-core machine under a load average of 14-26
#: (docs/fidelity.md, the lecture): one-layer 25.7 min wall, 3 CPU-minutes; wavelet-first-layer
#: 32.7 min wall, 3 CPU-minutes.
ONE_LAYER_SIZE = {"seeds": 2, "epochs": {"fc": 20, "digits-vgg": 3}}
WAVELET_SIZE = {"seeds": 2, "epochs": 15}
#: The frames of the wavelet study: (family, level); db2 at three levels, four families at level 2.
FRAMES = (("haar", 2), ("db2", 1), ("db2", 2), ("db2", 3), ("sym4", 2), ("coif1", 2))
#: τ on images in [0, 1] (the codes of a Parseval frame have the image's energy; a digit's detail
#: coefficients reach about 0.5, half of them are under 0.005).
TAUS = (0.0, 0.01, 0.03, 0.1, 0.2, 0.4)
NETS = ("fc", "digits-vgg")


def fully_connected(widths=(100,) * 6, in_features: int = 32 * 32, num_classes: int = 10) -> nn.Sequential:
    """The slide's fully connected net (Raghu et al. Fig. 6 trains one layer of one on MNIST):
    flatten, then ``fc1`` … ``fcN`` (Linear + ReLU) and the output layer ``fc{N+1}``."""
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    n = in_features
    for i, w in enumerate(widths, start=1):
        layers += [(f"fc{i}", nn.Linear(n, w)), (f"relu{i}", nn.ReLU())]
        n = w
    layers.append((f"fc{len(widths) + 1}", nn.Linear(n, num_classes)))
    return nn.Sequential(OrderedDict(layers))


def _network(net: str, seed: int) -> nn.Module:
    """A fresh ``net`` from ``seed``: He initialisation, w ~ N(0, 2/fan_in), zero biases. Raghu et al.
    draw w ~ N(0, σ_w²/k); σ_w² = 2 is where a ReLU net neither shrinks nor grows its signal with depth.
    PyTorch's default (variance 1/(3·fan_in)) shrinks it six-fold per layer: trained for one epoch, the
    fully connected net with only fc2 … fc7 trained stayed at chance (0.10) on every layer after the first."""
    from workbench.models.architectures import digits_vgg

    if net == "fc":
        module = fully_connected()
    elif net == "digits-vgg":
        module = digits_vgg()
    else:
        raise UserError(f"unknown network '{net}': use {', '.join(NETS)}")
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=g)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def trainable_layers(module: nn.Module) -> list[str]:
    """The layers one can train alone: every Conv2d and Linear, in order."""
    return [n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def parameter_hashes(module: nn.Module) -> dict[str, str]:
    """SHA-256 of every parameter's bytes, by name."""
    return {n: hashlib.sha256(p.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for n, p in module.named_parameters()}


def train_one_layer(module: nn.Module, layer: str | None, *, epochs: int, seed: int, device="cpu",
                    cancel: CancelToken | None = None, train_data=None, test_data=None) -> Generator[Event, None, dict]:
    """Train only ``layer``'s parameters (``None``: every layer; ``""``: none, only measure) and
    return the accuracies and ``changed``: the parameters whose hash changed."""
    from workbench.models.train import accuracy, train_classifier

    names = [n for n, _p in module.named_parameters()]
    if layer not in (None, "") and layer not in trainable_layers(module):
        raise UserError(f"{layer} is not a layer with weights: use one of {', '.join(trainable_layers(module))}")
    for n, p in module.named_parameters():
        p.requires_grad_(layer is None or (layer != "" and n.rsplit(".", 1)[0] == layer))
    before = parameter_hashes(module)
    trained = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if layer == "":
        from workbench.data.digits import DIGITS_MEAN, DIGITS_STD, load_digits32

        mean = torch.tensor(DIGITS_MEAN).view(1, -1, 1, 1)
        std = torch.tensor(DIGITS_STD).view(1, -1, 1, 1)
        result = {"train_accuracy": accuracy(module, train_data or load_digits32("train"), mean, std),
                  "test_accuracy": accuracy(module, test_data or load_digits32("test"), mean, std)}
    else:
        result = yield from train_classifier(module, epochs=epochs, seed=seed, device=device, cancel=cancel,
                                             train_data=train_data, test_data=test_data)
    after = parameter_hashes(module.cpu())
    result["changed"] = [n for n in names if before[n] != after[n]]
    result["trained_parameters"] = trained
    for p in module.parameters():
        p.requires_grad_(True)
    return result


def _relay_quiet(job: Generator, stage: str, done: int, total: int):
    """Run an inner training job, its steps turned into this study's progress (one Step per 20), its
    logs dropped (the study logs per group)."""
    def translate(event):
        if isinstance(event, Step) and event.iteration % 20 == 0:
            return Step(done, total, dict(event.values), stage=stage)
        return None

    return (yield from relay(job, translate))


def _mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


# --------------------------------------------------------------------------- one-layer (Raghu Fig. 6)

def one_layer_study(*, seeds: int = ONE_LAYER_SIZE["seeds"], epochs: int | None = None, nets=NETS, out=None,
                    runs_root=None, device: str | torch.device = "cpu", cancel: CancelToken | None = None,
                    figure=None, data=None) -> Generator[Event, None, dict]:
    """Raghu et al. Fig. 6 on the digits: for each net and each of its layers, ``seeds`` fresh
    networks with only that layer trained for ``epochs`` (default per net: ONE_LAYER_SIZE), plus the
    untrained net and the net with every layer trained, as references. ``data``: ((x, y) train,
    (x, y) test) of 32×32 images in [0, 1] instead of the digits split."""
    train_data, test_data = data if data is not None else (None, None)
    cancel = cancel or CancelToken()
    device = torch.device(device)
    nets = tuple(nets)
    for net in nets:
        if net not in NETS:
            raise UserError(f"unknown network '{net}': use {', '.join(NETS)}")
    epochs_of = {net: int(epochs) if epochs is not None else ONE_LAYER_SIZE["epochs"][net] for net in nets}
    config = {"study": "one-layer", "nets": list(nets), "seeds": seeds, "epochs": epochs_of, "optimizer": "Adam 1e-3",
              "init": "He normal N(0, 2/fan_in), zero biases, seeded", "fc": "1024-100x6-10, ReLU",
              "data": "digits 32x32 (1347 train / 450 test)" if data is None else
              f"given: {len(data[0][1])} train / {len(data[1][1])} test"}

    def body(run):
        started = time.monotonic()
        tasks = []
        for net in nets:
            layers = trainable_layers(_network(net, 0))
            for which in ["", *layers, None]:   # untrained, each layer alone, every layer
                tasks += [(net, which, s) for s in range(seeds)]
        results: dict[tuple, list[dict]] = {}
        status = "done"
        try:
            for k, (net, which, s) in enumerate(tasks):
                cancel.check()
                label = {"": "untrained", None: "all layers"}.get(which, which)
                module = _network(net, s)
                r = yield from _relay_quiet(train_one_layer(module, which, epochs=epochs_of[net], seed=s, device=device,
                                                            cancel=cancel, train_data=train_data, test_data=test_data),
                                            f"{net}: {label} seed {s}", k, len(tasks))
                results.setdefault((net, which), []).append(r)
                yield Step(k + 1, len(tasks), {"test": r["test_accuracy"]}, stage=f"{net}: {label} seed {s}")
                if s == seeds - 1:
                    yield Log(f"{net} {label}: test accuracy "
                              f"{np.mean([x['test_accuracy'] for x in results[(net, which)]]):.3f}")
        except Cancelled:
            status = "cancelled"
        metrics = _one_layer_metrics(config, results, nets, seeds)
        metrics["seconds"] = round(time.monotonic() - started, 1)
        metrics["complete"] = status == "done"
        for net in metrics["nets"]:
            save_one_layer_figure(run, metrics, net, figure)
        return metrics

    return (yield from study_job("one-layer", config, body, threads=job_threads(STUDY_INPUT, STUDY_BATCH),
                                 out=out, runs_root=runs_root, device=device))


def _one_layer_metrics(config, results, nets, seeds) -> dict[str, Any]:
    out: dict[str, Any] = {"config": config, "nets": {}}
    for net in nets:
        rows = []
        for (n, which), rs in results.items():
            if n != net or which in ("", None) or len(rs) < seeds:
                continue
            tr, tr_sd = _mean_std([r["train_accuracy"] for r in rs])
            te, te_sd = _mean_std([r["test_accuracy"] for r in rs])
            changed = sorted({c for r in rs for c in r["changed"]})
            rows.append({"layer": which, "train_accuracy": tr, "train_std": tr_sd, "test_accuracy": te,
                         "test_std": te_sd, "per_seed_test": [r["test_accuracy"] for r in rs],
                         "changed": changed, "parameters": rs[0].get("trained_parameters"),
                         "only_this_layer_changed": all(c.rsplit(".", 1)[0] == which for c in changed) and bool(changed)})
        if not rows:
            continue
        entry: dict[str, Any] = {"layers": rows}
        for key, which in (("untrained", ""), ("all_layers", None)):
            rs = results.get((net, which), [])
            if len(rs) == seeds:
                entry[key] = {"train_accuracy": _mean_std([r["train_accuracy"] for r in rs])[0],
                              "test_accuracy": _mean_std([r["test_accuracy"] for r in rs])[0],
                              "changed": sorted({c for r in rs for c in r["changed"]})}
        tests = [r["test_accuracy"] for r in rows]
        entry["best_layer"] = rows[int(np.argmax(tests))]["layer"]
        # Raghu et al.: training an earlier layer beats training a later one; how often does it here?
        pairs = [(i, j) for i in range(len(tests)) for j in range(i + 1, len(tests))]
        entry["earlier_beats_later"] = f"{sum(tests[i] > tests[j] for i, j in pairs)} of {len(pairs)} pairs"
        entry["spearman_test_vs_depth"] = _spearman(list(range(len(tests))), tests)
        out["nets"][net] = entry
    return out


def _spearman(x, y) -> float | None:
    if len(x) < 3:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def one_layer_figure(metrics: dict, net: str, style=None):
    """Train and test accuracy against the layer trained (mean ± 2 std over the seeds), with the
    untrained and fully trained nets dotted."""
    from workbench.export.plots import HLine, Series, line_figure

    entry = metrics["nets"][net]
    rows = entry["layers"]
    seeds = metrics["config"]["seeds"]
    epochs = metrics["config"]["epochs"][net]
    hlines = [HLine(0.1, "chance", (150, 150, 150))]
    if "untrained" in entry:
        hlines.append(HLine(entry["untrained"]["test_accuracy"], "untrained (test)", (120, 120, 120)))
    if "all_layers" in entry:
        hlines.append(HLine(entry["all_layers"]["test_accuracy"], "every layer trained (test)", (31, 119, 180)))
    series = [Series("train", [r["train_accuracy"] for r in rows], [2 * r["train_std"] for r in rows], (255, 127, 14)),
              Series("test", [r["test_accuracy"] for r in rows], [2 * r["test_std"] for r in rows], (214, 39, 40))]
    what = "fully connected 1024-100×6-10" if net == "fc" else net
    return line_figure(series, x_labels=[r["layer"] for r in rows], xlabel="the one layer trained (others frozen at init)",
                       ylabel="accuracy on digits", hlines=hlines, y_range=(0.0, 1.02), style=style,
                       title=f"Training exactly one layer of {what} ({epochs} epochs, {seeds} nets, mean ± 2 std)")


def save_one_layer_figure(run, metrics: dict, net: str, style=None) -> None:
    from workbench.export.render import save_run_figure

    save_run_figure(run, f"one_layer_{net.replace('-', '_')}", one_layer_figure(metrics, net, style), style)


def _describe_one_layer(m: dict) -> list[str]:
    lines = [f"one-layer study: {m['seconds']} s"]
    for net, e in m["nets"].items():
        lines.append(f"{net}: test accuracy per layer trained: " +
                     ", ".join(f"{r['layer']} {r['test_accuracy']:.3f}" for r in e["layers"]))
        refs = [f"{k} {e[k]['test_accuracy']:.3f}" for k in ("untrained", "all_layers") if k in e]
        lines.append(f"  {', '.join(refs)}; best {e['best_layer']}; earlier beats later in {e['earlier_beats_later']}; "
                     f"only the trained layer changed: {all(r['only_this_layer_changed'] for r in e['layers'])}")
    return lines


# --------------------------------------------------------------------------- wavelet first layer

class LearnedFirstLayer(nn.Module):
    """The control: a learned first layer as wide as a frame (k×k, circular padding), then the slide's σ_τ."""

    def __init__(self, channels: int, kernel: int, tau: float, kind: str) -> None:
        super().__init__()
        from workbench.filters.wavelets import Thresholded

        self.conv = nn.Conv2d(1, channels, kernel, padding=kernel // 2, padding_mode="circular")
        self.sigma = Thresholded(tau, kind)

    def forward(self, x):
        return self.sigma(self.conv(x))


def _codes(frame, x: torch.Tensor, tau: float, kind: str, odd: bool) -> torch.Tensor:
    from workbench.filters.wavelets import threshold

    with torch.no_grad():
        return threshold(frame(x), tau, kind, odd)


def _linear_on(features: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 10))


def wavelet_study(*, seeds: int = WAVELET_SIZE["seeds"], epochs: int = WAVELET_SIZE["epochs"], frames=FRAMES,
                  taus=TAUS, kinds=("hard", "soft"), out=None, runs_root=None, device: str | torch.device = "cpu",
                  cancel: CancelToken | None = None, figure=None, data=None) -> Generator[Event, None, dict]:
    """The lecture's transfer learning: a fixed wavelet first layer, σ_τ, a learned linear classifier;
    per frame, threshold kind and τ the test accuracy (mean over ``seeds`` classifiers) and the codes'
    sparsity. Controls: the textbook (sign-keeping) thresholds on the first frame, a learned first layer
    as wide as the first frame (7×7, end to end, σ_soft at τ = 0, i.e. |·|), and a linear classifier on
    the pixels. ``data``: ((x, y) train, (x, y) test) of 32×32 images in [0, 1] instead of the digits."""
    from workbench.data.digits import load_digits32
    from workbench.filters.wavelets import WaveletFrame
    from workbench.models.train import train_classifier

    cancel = cancel or CancelToken()
    device = torch.device(device)
    frames = [tuple(f) for f in frames]
    built = {f: WaveletFrame(f[0], int(f[1]), (32, 32)) for f in frames}  # bad names refused before the folder
    config = {"study": "wavelet-first-layer", "frames": [list(f) for f in frames], "taus": list(taus),
              "kinds": list(kinds), "seeds": seeds, "epochs": epochs, "optimizer": "Adam 1e-3",
              "threshold": "the slide's sigma_hard / sigma_soft as printed (magnitudes); 'odd' = textbook, sign kept",
              "tau_scale": "images in [0, 1]; Parseval frame (codes carry the image's energy)",
              "classifier": "linear (softmax) on the flattened codes",
              "data": "digits 32x32 (1347 train / 450 test)" if data is None else
              f"given: {len(data[0][1])} train / {len(data[1][1])} test"}

    def body(run):
        started = time.monotonic()
        (xtr, ytr), (xte, yte) = data if data is not None else (load_digits32("train"), load_digits32("test"))
        plan: list[tuple] = [(f, kind, tau, False) for f in frames for kind in kinds for tau in taus]
        plan += [(frames[0], kind, tau, True) for kind in kinds for tau in taus]
        total = (len(plan) + 2) * seeds
        done = 0
        rows: list[dict] = []
        controls: dict[str, Any] = {}
        status = "done"

        def train(module, data, test, s, stage):
            nonlocal done
            c = data[0].shape[1]
            r = yield from _relay_quiet(train_classifier(module, epochs=epochs, seed=s, train_data=data, test_data=test,
                                                         mean=(0.0,) * c, std=(1.0,) * c, device=device,
                                                         cancel=cancel), stage, done, total)
            done += 1
            yield Step(done, total, {"test": r["test_accuracy"]}, stage=stage)
            return r

        try:
            for f, kind, tau, odd in plan:
                frame = built[f]
                ctr, cte = _codes(frame, xtr, tau, kind, odd), _codes(frame, xte, tau, kind, odd)
                accs = []
                for s in range(seeds):
                    torch.manual_seed(s)
                    r = yield from train(_linear_on(ctr[0].numel()), (ctr, ytr), (cte, yte), s,
                                         f"{f[0]} J={f[1]} {kind}{' odd' if odd else ''} τ={tau:g} seed {s}")
                    accs.append(r)
                m, sd = _mean_std([a["test_accuracy"] for a in accs])
                rows.append({"wavelet": f[0], "level": int(f[1]), "kind": kind, "odd": odd, "tau": float(tau),
                             "test_accuracy": m, "test_std": sd,
                             "train_accuracy": _mean_std([a["train_accuracy"] for a in accs])[0],
                             "sparsity": float((cte == 0).float().mean()),
                             "channels": frame.channels})
            yield Log("wavelet frames done; controls")
            width = built[frames[0]].channels
            for name, make, split in (
                    ("learned_first_layer", lambda s: nn.Sequential(LearnedFirstLayer(width, 7, 0.0, "soft"),
                                                                    _linear_on(width * 32 * 32)),
                     ((xtr, ytr), (xte, yte))),
                    ("pixels", lambda s: _linear_on(32 * 32), ((xtr, ytr), (xte, yte)))):
                accs = []
                for s in range(seeds):
                    torch.manual_seed(s)
                    module = make(s)
                    accs.append((yield from train(module, split[0], split[1], s, f"{name} seed {s}")))
                controls[name] = {"test_accuracy": _mean_std([a["test_accuracy"] for a in accs])[0],
                                  "test_std": _mean_std([a["test_accuracy"] for a in accs])[1],
                                  "train_accuracy": _mean_std([a["train_accuracy"] for a in accs])[0]}
                if name == "learned_first_layer":
                    controls[name].update({"channels": width, "kernel": 7, "sigma": "soft, tau 0 (|x|)",
                                           "sparsity": float((module[0](xte) == 0).float().mean())})
                    learned_filters = module[0].conv.weight.detach()[:, 0].numpy()
        except Cancelled:
            status = "cancelled"
        metrics: dict[str, Any] = {"config": config, "seconds": round(time.monotonic() - started, 1),
                                   "complete": status == "done", "rows": rows, "controls": controls}
        if rows:
            best = max((r for r in rows if not r["odd"]), key=lambda r: r["test_accuracy"], default=None)
            metrics["best"] = best
            save_wavelet_figures(run, metrics, figure)
            if "learned_first_layer" in controls:
                save_filter_figure(run, built[frames[0]], learned_filters, figure)
        return metrics

    return (yield from study_job("wavelet-first-layer", config, body, threads=job_threads(STUDY_INPUT, STUDY_BATCH),
                                 out=out, runs_root=runs_root, device=device))


_FAMILY_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                   (227, 119, 194), (127, 127, 127)]


def wavelet_figures(metrics: dict, style=None) -> dict[str, Any]:
    """``wavelet_accuracy``: test accuracy against τ, one colour per frame (soft solid, hard dashed),
    the learned first layer and the pixels dotted; ``wavelet_sparsity``: accuracy against the
    fraction of zero codes."""
    from workbench.export.plots import HLine, Series, line_figure

    rows = [r for r in metrics["rows"] if not r["odd"]]
    frames = list(dict.fromkeys((r["wavelet"], r["level"]) for r in rows))
    taus = sorted({r["tau"] for r in rows})
    series, sparse = [], []
    for i, f in enumerate(frames):
        for kind in ("soft", "hard"):
            rs = sorted((r for r in rows if (r["wavelet"], r["level"]) == f and r["kind"] == kind), key=lambda r: r["tau"])
            if not rs:
                continue
            colour = _FAMILY_COLOURS[i % len(_FAMILY_COLOURS)]
            label = f"{f[0]} J={f[1]}" if kind == "soft" else ""
            if [r["tau"] for r in rs] != taus:
                continue
            series.append(Series(label, [r["test_accuracy"] for r in rs], [2 * r["test_std"] for r in rs], colour,
                                 dashed=kind == "hard"))
            sparse.append(Series(label, [r["test_accuracy"] for r in rs], None, colour, dashed=kind == "hard",
                                 x=[r["sparsity"] for r in rs], markers=True))
    controls = metrics.get("controls", {})
    hlines = []
    if "learned_first_layer" in controls:
        hlines.append(HLine(controls["learned_first_layer"]["test_accuracy"], "learned first layer", (0, 0, 0)))
    if "pixels" in controls:
        hlines.append(HLine(controls["pixels"]["test_accuracy"], "linear on pixels", (150, 150, 150)))
    seeds = metrics["config"]["seeds"]
    accuracy = line_figure(series, x_labels=[f"{t:g}" for t in taus], xlabel="threshold τ (soft solid, hard dashed)",
                           ylabel="test accuracy (linear classifier on σ_τ(Wx))", hlines=hlines, style=style,
                           title=f"A fixed wavelet first layer: accuracy against τ ({seeds} classifiers each)")
    sparsity = line_figure(sparse, xlabel="sparsity of the codes (fraction exactly 0; soft solid, hard dashed)",
                           ylabel="test accuracy", hlines=hlines, style=style, x_range=(-0.02, 1.02),
                           title="Accuracy against the sparsity of the wavelet codes")
    return {"wavelet_accuracy": accuracy, "wavelet_sparsity": sparsity}


def save_wavelet_figures(run, metrics: dict, style=None) -> None:
    from workbench.export.render import save_run_figure

    for name, fig in wavelet_figures(metrics, style).items():
        save_run_figure(run, name, fig, style)


def save_filter_figure(run, frame, learned: np.ndarray, style=None) -> None:
    """The frame's channels (their spatial filters, cropped to their support) beside the learned first layer's 7×7."""
    from workbench.export.figures import FigureGrid
    from workbench.export.render import save_run_figure

    def tile(f):
        a = np.asarray(f, dtype=np.float64)
        return 0.5 + a / (2 * max(np.abs(a).max(), 1e-12))

    fil = frame.filters()
    rows_, cols_ = np.nonzero(np.abs(fil).max(0) > 1e-3 * np.abs(fil).max())   # the frame's support
    r0, r1, c0, c1 = rows_.min(), rows_.max() + 1, cols_.min(), cols_.max() + 1
    side = max(r1 - r0, c1 - c0)
    wave = [tile(f[r0:r0 + side, c0:c0 + side]) for f in fil]
    mine = [tile(f) for f in learned]
    n = max(len(wave), len(mine))
    rows = [wave + [None] * (n - len(wave)), mine + [None] * (n - len(mine))]
    grid = FigureGrid(rows, row_labels=[f"{frame.wavelet} J={frame.level}", "learned"],
                      col_labels=frame.channel_names + [""] * (n - len(wave)),
                      title=f"First-layer filters: the {frame.wavelet} frame ({side}×{side}) and a learned layer "
                            f"as wide (7×7; grey = 0)")
    save_run_figure(run, "first_layer_filters", grid.figure(style), style)


def _describe_wavelet(m: dict) -> list[str]:
    """Per frame and threshold (the slide's and the textbook's): τ = 0 and the best τ > 0 with the codes'
    sparsity there; the controls; the best frame."""
    lines = [f"wavelet-first-layer study: {m['seconds']} s"]
    groups: dict[tuple, list[dict]] = {}
    for r in m["rows"]:
        groups.setdefault((r["wavelet"], r["level"], r["kind"], r["odd"]), []).append(r)
    for (w, level, kind, odd), rs in groups.items():
        zero = next((r for r in rs if r["tau"] == 0.0), None)
        best = max((r for r in rs if r["tau"] > 0), key=lambda r: r["test_accuracy"], default=None)
        text = f"{w} J={level} {kind}{' (textbook)' if odd else ''}:"
        if zero is not None:
            text += f" τ=0 test {zero['test_accuracy']:.3f};"
        if best is not None:
            text += f" best τ={best['tau']:g} test {best['test_accuracy']:.3f} at sparsity {best['sparsity']:.2f}"
        lines.append(text)
    for k, v in m["controls"].items():
        lines.append(f"{k}: test {v['test_accuracy']:.3f}")
    if m.get("best"):
        b = m["best"]
        lines.append(f"best frame: {b['wavelet']} J={b['level']} {b['kind']} τ={b['tau']:g} test {b['test_accuracy']:.3f}")
    return lines


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class LectureStudy:
    job: Callable[..., Generator[Event, None, dict]]
    describe: Callable[[dict], list[str]]
    sizes: tuple[str, ...]   # which of --seeds/--epochs it takes


LECTURE_STUDIES = {
    "one-layer": LectureStudy(one_layer_study, _describe_one_layer, ("seeds", "epochs")),
    "wavelet-first-layer": LectureStudy(wavelet_study, _describe_wavelet, ("seeds", "epochs")),
}


def run_lecture_study(name: str, *, out=None, runs_root=None, device: str = "auto", cancel: CancelToken | None = None,
                      figure=None, **size) -> Generator[Event, None, dict]:
    """Run the lecture study ``name`` (``size``: seeds, epochs; None keeps the default)."""
    from workbench import limits
    from workbench.device import resolve_device

    if name not in LECTURE_STUDIES:
        raise UserError(f"unknown study '{name}': use one of {', '.join(LECTURE_STUDIES)}")
    given = {k: v for k, v in size.items() if v is not None}
    for key, value in given.items():
        if key not in LECTURE_STUDIES[name].sizes:
            raise UserError(f"study {name} takes no --{key}")
        limits.integer(f"--{key}", value, 1, 1000)
    return (yield from LECTURE_STUDIES[name].job(out=out, runs_root=runs_root, device=resolve_device(device),
                                                 cancel=cancel, figure=figure, **given))
