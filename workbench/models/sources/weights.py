"""Reading weights: safetensors, ``torch.load(weights_only=True)`` state_dicts, and — only with
trust — TorchScript archives and full pickles, which run code from the file when loaded
(:class:`~workbench.models.sources.loaded.NeedsTrust` otherwise, before a byte is deserialised).
A strict load into an architecture says in one line what does not fit."""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.models.sources.loaded import NeedsTrust, _first_line


_HASH = re.compile(r"-([a-f0-9]+)\.")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jit_load(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable TorchScript file ({_first_line(exc)})") from None


def regular_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (a symlink to one counts) whose bytes fit in memory; else a
    :class:`UserError` at once, before a byte is read: ``/dev/zero`` would be read until memory runs
    out, and a FIFO would block forever."""
    import stat

    from workbench.limits import require_memory

    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist: check the path") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({_first_line(exc)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what} {path} is a folder: give a file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a file")
        raise UserError(f"{what} {path} is {kind}, not a regular file: refused (give a model file)")
    require_memory(info.st_size, f"reading {what} {path.name} ({info.st_size:,} bytes)",
                   "free memory or use a smaller file")
    return path


def _read_weights(text: str, trust: bool) -> tuple[Path, dict[str, torch.Tensor], str]:
    """``--weights``: a safetensors file or a state_dict (``weights_only``); TorchScript and full
    pickles only with ``trust``. The path, the tensors and what kind of file it was."""
    path = Path(text).expanduser()
    if not path.is_file():
        if path.is_dir() or not path.exists():
            what = "is a folder: give a weights file" if path.is_dir() else "does not exist: check the path"
            raise UserError(f"--weights {path} {what} (.safetensors or a .pt state_dict)")
    regular_file(path, "--weights")
    if path.suffix.lower() == ".onnx":
        raise UserError(f"--weights {path.name} is an ONNX graph, not weights: open it as --model {path.name}")
    if path.suffix.lower() == ".json":
        raise UserError(f"--weights {path.name} is metadata, not weights: give the .safetensors or .pt file beside it")
    if path.suffix.lower() == ".safetensors":
        return path, _read_safetensors(path)[0], "safetensors"
    if _is_torchscript(path):
        if not trust:
            raise NeedsTrust(str(path), "TorchScript")
        return path, dict(_jit_load(path).state_dict()), "TorchScript (trusted)"
    obj = _torch_load_weights(path, trust=trust, what=str(path))
    if isinstance(obj, nn.Module):
        return path, dict(obj.state_dict()), "pickled module (trusted)"
    return path, _unwrap_state_dict(obj, path), "state_dict"


def _head_key(module: nn.Module) -> str | None:
    """The name of the last Linear or Conv2d (the classifier head: ``fc``, ``classifier.6``, ``classifier.1``)."""
    last = None
    for name, sub in module.named_modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)) and name:
            last = name
    return last


def _head_classes(module: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """How many classes ``state``'s head has, when only that differs from ``module``'s head; else None."""
    head = _head_key(module)
    if head is None:
        return None
    expected = module.state_dict()
    state = _strip_prefix(state, expected)
    w_key, b_key = f"{head}.weight", f"{head}.bias"
    got = state.get(w_key)
    if not isinstance(got, torch.Tensor) or w_key not in expected:
        return None
    want = expected[w_key]
    if got.dim() != want.dim() or got.shape == want.shape or got.shape[1:] != want.shape[1:] or got.shape[0] < 1:
        return None
    n = int(got.shape[0])
    if b_key in expected and (b_key not in state or tuple(state[b_key].shape) != (n,)):
        return None
    return n


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable safetensors file ({_first_line(exc)}): "
                        f"it may be truncated or corrupt") from None
    return tensors, meta


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive, from the zip's directory alone (nothing in it is read).

    Either reader counting it as TorchScript is enough: Python's zipfile (a ``code/`` folder or
    ``constants.pkl``) or torch's own (the test ``torch.load`` uses to hand a file to ``torch.jit.load``)."""
    names: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        pass
    if any(n.endswith("constants.pkl") or n.startswith("code/") or "/code/" in n for n in names):
        return True
    try:
        return "constants.pkl" in torch._C.PyTorchFileReader(str(path)).get_all_records()
    except Exception:
        return False


def _torch_load_weights(path: Path, *, trust: bool, what: str) -> Any:
    """``torch.load(weights_only=True)``; a full pickle needs ``trust`` (it runs code from the file)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="'torch.load' received a zip file that looks like a TorchScript")
            # a sparse tensor in the file: torch checks it, and says so; a bad one is still refused below
            warnings.filterwarnings("ignore", message="Validating sparse tensor invariants")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except RuntimeError as exc:
        if "TorchScript" in str(exc):  # torch refuses TorchScript under weights_only before reading it
            if trust:
                raise UserError(f"{what} is a TorchScript archive, not a state_dict: open it as a model file") from None
            raise NeedsTrust(what, "TorchScript") from None
        raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a disallowed class/function: a damaged file
            raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
        if not trust:
            raise NeedsTrust(what, "pickle") from None
    except Exception as exc:
        raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"{what} could not be unpickled ({type(exc).__name__}: {_first_line(exc)})") from None


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            complex_ = [k for k, v in obj.items() if v.is_complex()]
            if complex_:  # copying them into real weights would drop the imaginary part, with a warning
                raise UserError(f"{path.name} holds complex tensors ({', '.join(map(str, complex_[:3]))}): a CNN's "
                                f"weights are real; save real tensors")
            return {k: v.to_dense() if v.layout != torch.strided else v for k, v in obj.items()}
    raise UserError(f"{path.name} holds a {type(obj).__name__}, not a state_dict of tensors: "
                    f"save it with torch.save(model.state_dict(), ...)")


def _strip_prefix(state: dict[str, torch.Tensor], expected: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Keys saved from a DataParallel wrapper (``module.``) under their own names."""
    return {k[len("module."):] if k.startswith("module.") and k not in expected else k: v for k, v in state.items()}


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str,
                hint: str = "check --arch") -> None:
    """Strict load with a one-line account of what does not fit."""
    expected = module.state_dict()
    state = _strip_prefix(state, expected)
    for key in expected:  # files saved before BatchNorm counted batches lack these
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape ({', '.join(wrong[:2])}{' ...' if len(wrong) > 2 else ''})")
        raise UserError(f"{path.name} does not fit architecture '{arch}': " + "; ".join(parts)
                        + f" keys; {hint}")
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise UserError(f"{path.name} does not fit architecture '{arch}' ({_first_line(exc)})") from None
