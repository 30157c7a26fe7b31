"""What a pre-image run measures (metrics.json): eq. 3's reconstruction error per restart (inversion),
the reached activation (maximisation, caricature), classification consistency and the top-5 classes,
the CVPR 2015 formulation's N_Φ error, and how far the restarts lie apart (IJCV sect. 5.3, Fig. 12)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workbench.preimage import cvpr2015, quality
from workbench.preimage.objectives import inner_product_loss, inversion_loss
from workbench.preimage.problem import Problem, view_name


@torch.no_grad()
def run_metrics(config, model, problem: Problem, x: torch.Tensor, x0, info, layer) -> dict[str, Any]:
    """Eq. 3 per restart (invert), the reached activation (maximize), classification consistency."""
    metrics: dict[str, Any] = {"model": model.name, "trained": bool(getattr(model, "trained", True)),
                               "layer": layer.name, "method": config.method,
                               "C": info["C"], "jitter": info["T"], "rf_size": layer.rf_size, "stride": layer.stride,
                               "view": view_name(problem)}
    code = problem.code(x)
    if config.method == "invert":
        err = inversion_loss(code, problem.phi0, problem.mask).cpu().numpy()
        metrics["reconstruction_error"] = [float(e) for e in err]
        metrics["reconstruction_error_mean"] = float(err.mean())
        metrics["reconstruction_error_std"] = float(err.std())
    else:
        score = -inner_product_loss(code, problem.phi0, 1.0).cpu().numpy()
        metrics["activation"] = [float(s) for s in score]
        metrics["activation_std"] = float(score.std())
        metrics["Z"] = info["Z"]
        if config.method == "maximize":
            metrics.update(channel=config.channel, component=info["component"], neuron=info["neuron"],
                           M=info["M"], M_source=info["M_source"], rho=info["rho"],
                           C_over_rho2=info["C"] / info["rho"] ** 2,  # 1 at the default C = ρ² (presets.maximize_C)
                           activation_over_M=[float(s / info["M"]) for s in score])
        else:
            ref = float((problem.phi0 * problem.phi0).sum())
            metrics["activation_over_reference"] = [float(s / ref) for s in score]
    if model.has_classifier and x0 is not None:
        logits = model.module(torch.cat([x0, x]) * problem.scale)
        pred = logits.argmax(1).cpu().numpy()
        prob = logits.float().softmax(1).amax(1).cpu().numpy()  # softmax probability of the predicted class
        metrics["reference_prediction"] = int(pred[0])
        metrics["reference_probability"] = float(prob[0])
        metrics["predictions"] = [int(p) for p in pred[1:]]
        metrics["probabilities"] = [float(p) for p in prob[1:]]
        metrics["classification_consistency"] = float((pred[1:] == pred[0]).mean())
        top = top_predictions(logits, model.class_names)
        metrics["reference_top5"], metrics["top5"] = top[0], top[1:]
    elif model.has_classifier:
        logits = model.module(x * problem.scale)
        metrics["predictions"] = [int(p) for p in logits.argmax(1).cpu().numpy()]
        metrics["probabilities"] = [float(p) for p in logits.float().softmax(1).amax(1).cpu().numpy()]
        metrics["top5"] = top_predictions(logits, model.class_names)
        if config.method == "maximize" and quality.is_class_output(model, layer):
            c = config.channel
            p = logits.float().softmax(1)[:, c]
            metrics.update(target_class=c, target_name=str(model.class_names[c]),
                           target_logit=[float(v) for v in logits[:, c].cpu()],
                           target_probability=[float(v) for v in p.cpu()])
    return metrics


@torch.no_grad()
def cvpr2015_metrics(model, problem: Problem, x: torch.Tensor, info, device) -> dict[str, Any]:
    """The CVPR 2015 run's constants and its Tables 1 and 3 error ‖Φ(x*) − Φ0‖ / N_Φ per restart (N_Φ over
    the model's calibration images, :func:`workbench.preimage.cvpr2015.code_normaliser`)."""
    out: dict[str, Any] = {k: info[k] for k in ("formulation", "lambda_tv", "lambda_tv_preset", "lambda_alpha", "sigma",
                                                "sigma_source")}
    n_phi, source = cvpr2015.code_normaliser(model, problem.phi, problem.scale, problem.mean, device, mask=problem.mask)
    out.update(N_phi=n_phi, N_phi_source=source)
    if n_phi:
        mask = problem.mask if problem.mask is not None else 1.0
        distance = ((problem.code(x) - problem.phi0) * mask).flatten(1).norm(dim=1).cpu().numpy()
        out["reconstruction_error_nphi"] = [float(d / n_phi) for d in distance]
        out["reconstruction_error_nphi_mean"] = float(np.mean(distance / n_phi))
    return out


def top_predictions(logits: torch.Tensor, names: list[str] | None, k: int = 5) -> list[list[dict[str, Any]]]:
    """Each image's ``k`` most probable classes (softmax of ``logits``), most probable first, as
    {"class", "name", "probability"}; the name is None where the model has no class names."""
    probs = logits.float().softmax(1)
    p, idx = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[{"class": int(c), "name": str(names[c]) if names and 0 <= c < len(names) else None,
              "probability": float(q)} for c, q in zip(row_i.tolist(), row_p.tolist())]
            for row_i, row_p in zip(idx.cpu(), p.cpu())]


def restart_spread(images: np.ndarray) -> dict[str, float]:
    """How far the K restarts' pre-images lie apart: the mean and largest pixel RMS between two
    restarts (pixels in [0, 1]). Near 0, the code pins the image down; large, it is ambiguous —
    the reading of multiple reconstructions in IJCV sect. 5.3 (Fig. 12)."""
    k = len(images)
    if k < 2:
        return {}
    flat = images.reshape(k, -1).astype(np.float64)
    rms = [float(np.sqrt(np.mean((flat[i] - flat[j]) ** 2))) for i in range(k) for j in range(i + 1, k)]
    return {"restart_rms_mean": float(np.mean(rms)), "restart_rms_max": float(np.max(rms))}
