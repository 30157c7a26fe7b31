"""--tol against the fixed 300+50 schedule (IJCV sect. 3.4) on digits-vgg: time to result and final
error, as ratios measured in the same run. No assertions (issue 11).

    python benchmarks/tol_stopping.py [--layers relu1,relu3,pool5] [--tol 1e-3] [--images 0,1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--layers", default="relu1,relu3,pool5")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--images", default="0,1")
    args = p.parse_args()

    from workbench.config.preimage import PreimageConfig
    from workbench.jobs import run_job
    from workbench.models import load_model
    from workbench.preimage.solve import preimage_job

    model = load_model("digits-vgg", device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="tol-bench-"))
    n = 0
    print(f"{'layer':8} {'image':>5} {'iters fixed':>11} {'iters tol':>9} {'time ratio':>10} {'error fixed':>11} "
          f"{'error tol':>9} {'error ratio':>11}")
    ratios = []
    for layer in args.layers.split(","):
        for image in args.images.split(","):
            out = {}
            for name, tol in (("fixed", None), ("tol", args.tol)):
                config = PreimageConfig(layer=layer, image=f"digits:{image}", restarts=1, device="cpu", frame_every=0,
                                        tol=tol)
                n += 1
                t0 = time.perf_counter()
                m = run_job(preimage_job(config, out=tmp / f"r{n}", model=model)).metrics
                out[name] = (time.perf_counter() - t0, m["iterations_used"], m["reconstruction_error_mean"])
            (tf, itf, ef), (tt, itt, et) = out["fixed"], out["tol"]
            ratios.append((tt / tf, et / ef))
            print(f"{layer:8} {image:>5} {itf:>11} {itt:>9} {tt / tf:>10.2f} {ef:>11.4f} {et:>9.4f} {et / ef:>11.3f}")
    import statistics

    print(f"geometric mean: time tol/fixed = {statistics.geometric_mean([r[0] for r in ratios]):.2f}, "
          f"error tol/fixed = {statistics.geometric_mean([r[1] for r in ratios]):.3f} (tol = {args.tol:g})")


if __name__ == "__main__":
    main()
