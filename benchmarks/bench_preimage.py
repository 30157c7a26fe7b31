"""One pre-image iteration against the floor: forward+backward of the truncated network.

    python benchmarks/bench_preimage.py [--model vgg16] [--layer conv3_3] [--restarts 1] [--iters 20]

Prints seconds per iteration for
  floor     x → Φ_ℓ(x) → backward, on the truncated network (what any method must pay),
  engine    the preimage job (priors, jitter, Algorithm 1, events), per iteration,
  whole     the full network forward+backward with a hook at the layer (what peers that
            run the whole network pay),
and the ratios engine/floor (target ≤ 1.15) and whole/engine.
"""

from __future__ import annotations

import argparse
import time

import torch


def _time(fn, iters: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def main() -> None:
    from workbench.device import resolve_device
    from workbench.jobs import Step
    from workbench.models import load_model
    from workbench.preimage import PreimageConfig, preimage_job
    from workbench.runs import RunStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--layer", default="conv3_3")
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--schedule", default="auto")
    args = ap.parse_args()

    device = resolve_device(args.device)
    model = load_model(args.model, device=device)
    layer = model.layer(args.layer)
    c, h, w = model.input_size
    phi = model.truncate(layer.name)
    x = torch.randn(args.restarts, c, h, w, device=device, requires_grad=True)

    def floor():
        x.grad = None
        phi(x).pow(2).sum().backward()

    captured = {}

    def hook(_module, _inputs, output):
        captured["out"] = output

    target = dict(model.module.named_modules()).get(layer.name)

    def whole():
        x.grad = None
        model.module(x)
        captured["out"].pow(2).sum().backward()

    t_floor = _time(floor, args.iters)
    t_whole = None
    if target is not None:
        handle = target.register_forward_hook(hook)
        try:
            t_whole = _time(whole, max(3, args.iters // 2))
        finally:
            handle.remove()

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config = PreimageConfig(model=args.model, layer=layer.name, method="invert", image="astronaut" if c == 3 else "digits:0",
                                restarts=args.restarts, iters=args.iters + 2, fine_tune_iters=0, device=str(device),
                                schedule=args.schedule, snapshot_every=10)
        stamps = []
        for event in preimage_job(config, runs=RunStore(tmp), model=model):
            if isinstance(event, Step):
                stamps.append(time.perf_counter())
        t_engine = (stamps[-1] - stamps[1]) / (len(stamps) - 2)

    print(f"model {args.model} layer {layer.name} ({layer.shape}), input {c}x{h}x{w}, restarts {args.restarts}, device {device}")
    print(f"floor  (truncated fwd+bwd): {t_floor * 1000:8.1f} ms/iter")
    print(f"engine (pre-image job)    : {t_engine * 1000:8.1f} ms/iter")
    if t_whole is not None:
        print(f"whole  (full net + hook)  : {t_whole * 1000:8.1f} ms/iter")
    print(f"ratio engine/floor = {t_engine / t_floor:.3f}  (target <= 1.15)")
    if t_whole is not None:
        print(f"ratio whole/engine = {t_whole / t_engine:.2f}  (how much a whole-network peer pays more)")


if __name__ == "__main__":
    main()
