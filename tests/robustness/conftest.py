"""Bad files for the robustness suite, built once per session in a temporary folder.

Big images are PNG headers that claim their size over a few bytes of data: the size is read
from the header, so refusing them must not need (or try) to decode 900 million pixels.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.resources import resource_path, shipped_filtergan_run

SHIPPED_GAN = shipped_filtergan_run()
VGG = resource_path("models", "digits-vgg.safetensors")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width × height (1-bit grey) followed by one tiny IDAT: cheap to make."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def png_bytes(size=(20, 20)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random(size) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _gan(root: Path, name: str, *, run_json=None, config=None, generator: bytes | None | str = "keep",
         checkpoint: bytes | None = None) -> None:
    folder = root / name
    shutil.copytree(SHIPPED_GAN, folder)
    if run_json is not None or config is not None:
        info = json.loads((folder / "run.json").read_text())
        if config is not None:
            info["config"] = config if not isinstance(config, dict) else {**info["config"], **config}
        text = run_json if isinstance(run_json, str) else json.dumps(info)
        (folder / "run.json").write_text(text)
    gen = folder / "tensors" / "generator.safetensors"
    if generator is None:
        gen.unlink()
    elif generator == "dir":
        gen.unlink()
        gen.mkdir()
    elif generator != "keep":
        gen.write_bytes(generator)
    if checkpoint is not None:
        (folder / "checkpoint.safetensors").write_bytes(checkpoint)
        (folder / "checkpoint.json").write_text("{broken")


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> Path:
    a = tmp_path_factory.mktemp("bad-inputs")
    good = png_bytes()
    (a / "good.png").write_bytes(good)
    (a / "noext").write_bytes(good)
    (a / "textnoext").write_text("not an image either\n")
    (a / "empty.png").write_bytes(b"")
    (a / "text.png").write_text("this is not an image\n")
    (a / "truncated.png").write_bytes(png_bytes((200, 200))[:300])
    (a / "bomb.png").write_bytes(png_header(30000, 30000))
    (a / "big.png").write_bytes(png_header(12000, 10000))   # between PIL's warning and error sizes
    (a / "over.png").write_bytes(png_header(9000, 9000))    # above our own limit only
    (a / "folder.png").mkdir()
    (a / "file.txt").write_text("a file, not a folder\n")
    (a / "nonempty").mkdir()
    (a / "nonempty" / "keep.txt").write_text("an earlier run\n")
    (a / "emptydir").mkdir()
    (a / "textdir").mkdir()
    (a / "textdir" / "notes.txt").write_text("no images here\n")
    (a / "onepng").mkdir()
    (a / "onepng" / "a.png").write_bytes(good)
    (a / "badpngs").mkdir()
    (a / "badpngs" / "a.png").write_text("not a png")
    (a / "badpngs" / "b.png").write_bytes(b"")
    (a / "bombs").mkdir()
    (a / "bombs" / "a.png").write_bytes(good)
    (a / "bombs" / "b.png").write_bytes(png_header(30000, 30000))
    # model files
    weights = VGG.read_bytes()
    (a / "empty.safetensors").write_bytes(b"")
    (a / "empty.pt").write_bytes(b"")
    (a / "random.safetensors").write_bytes(np.random.default_rng(1).bytes(4096))
    (a / "random.pt").write_bytes(np.random.default_rng(2).bytes(4096))
    (a / "truncated.safetensors").write_bytes(weights[: len(weights) // 2])
    (a / "model.json").write_text(json.dumps({"architecture": "digits-vgg"}))
    (a / "text.pt").write_text("print('hello')\n")
    (a / "dir.safetensors").mkdir()
    (a / "vgg.safetensors").write_bytes(weights)
    (a / "hugeheader.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    (a / "sidecar").mkdir()
    (a / "sidecar" / "net.safetensors").write_bytes(weights)
    (a / "sidecar" / "net.json").write_text(json.dumps({"architecture": "digits-vgg", "input_size": [1, 2, 2]}))
    (a / "badsidecar").mkdir()
    (a / "badsidecar" / "net.safetensors").write_bytes(weights)
    (a / "badsidecar" / "net.json").write_text("{not json")
    # filter-GAN run folders
    base = json.loads((SHIPPED_GAN / "run.json").read_text())["config"]
    _gan(a, "gan-ok")
    _gan(a, "gan-empty-json", run_json="")
    _gan(a, "gan-corrupt-json", run_json="{\"kind\": \"filtergan\", ")
    _gan(a, "gan-list-json", run_json="[1, 2]")
    _gan(a, "gan-string-json", run_json="\"filtergan\"")
    _gan(a, "gan-null-json", run_json="null")
    _gan(a, "gan-binary-json")
    (a / "gan-binary-json" / "run.json").write_bytes(b"\xff\xfe\x00\x01 not text")
    _gan(a, "gan-no-kind", run_json=json.dumps({"config": base}))
    _gan(a, "gan-wrong-kind", run_json=json.dumps({"kind": "invert", "config": base, "status": "done"}))
    _gan(a, "gan-config-null", config="null-marker")
    _gan(a, "gan-config-list", config=[1, 2, 3])
    _gan(a, "gan-config-string", config="digits-vgg")
    _gan(a, "gan-latent-string", config={"latent_dim": "16"})
    _gan(a, "gan-latent-negative", config={"latent_dim": -1})
    _gan(a, "gan-latent-float", config={"latent_dim": 16.5})
    _gan(a, "gan-latent-huge", config={"latent_dim": 10**9})
    _gan(a, "gan-hidden-huge", config={"hidden": 10**8})
    _gan(a, "gan-rank-huge", config={"rank": 10**8})
    _gan(a, "gan-hidden-null", config={"hidden": None})
    _gan(a, "gan-hidden-bool", config={"hidden": True})
    _gan(a, "gan-unknown-key", config={"colour": "blue"})
    _gan(a, "gan-model-unknown", config={"model": "no-such-model"})
    _gan(a, "gan-model-number", config={"model": 42})
    _gan(a, "gan-layer-missing", config={"layer": "conv99"})
    _gan(a, "gan-layer-relu", config={"layer": "relu4"})
    _gan(a, "gan-generator-kind", config={"generator": "wavelet"})
    _gan(a, "gan-shape-mismatch", config={"hidden": 64})
    _gan(a, "gan-gen-missing", generator=None)
    _gan(a, "gan-gen-empty", generator=b"")
    _gan(a, "gan-gen-random", generator=np.random.default_rng(3).bytes(2048))
    _gan(a, "gan-gen-text", generator=b"not safetensors at all\n")
    _gan(a, "gan-gen-json", generator=b'{"weight": [1, 2, 3]}')
    _gan(a, "gan-gen-truncated", generator=(SHIPPED_GAN / "tensors" / "generator.safetensors").read_bytes()[:5000])
    _gan(a, "gan-gen-dir", generator="dir")
    _gan(a, "gan-gen-hugeheader", generator=struct.pack("<Q", 2**62) + b"{}")
    _gan(a, "gan-ckpt-corrupt", generator=None, checkpoint=np.random.default_rng(4).bytes(1024))
    _gan(a, "gan-ckpt-empty", generator=None, checkpoint=b"")
    (a / "gan-no-runjson").mkdir()
    # fix up the "null" config marker (json.dumps would have written a string)
    info = json.loads((a / "gan-config-null" / "run.json").read_text())
    info["config"] = None
    (a / "gan-config-null" / "run.json").write_text(json.dumps(info))
    for p in a.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    return a
