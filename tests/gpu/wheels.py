"""The wheels the GPU check carries to a lent machine, and their offline install there.

    python -m tests.gpu.wheels build --out gpu_wheels        # here, with PyPI (make gpu-wheels)
    python -m tests.gpu.wheels install --wheels gpu_wheels --site .gpu-site    # there, no network (the check)

Why: the lent GPU machines have no network, and their python3 (3.12, torch 2.11 + CUDA, transformers, triton,
pytest, ...: `GPU_IMAGE`, from the device notes' package list) lacks what the check imports beyond it: DeepSpeed
and its pydantic/hjson, geomloss (the Sinkhorn bench's baseline), soundfile (tests/conftest.py) and webdataset
(train.pretrain's loader, imported by the memory model's config). `build` fills a git-ignored folder with cp312
manylinux x86_64 / pure-Python wheels of exactly those (DeepSpeed is source-only on PyPI: its wheel is built here
with DS_BUILD_OPS=0, pure Python, ops JIT-built on demand, none of which the check uses); `install` puts them into
a local target dir with ``pip --no-index --no-deps --target``, which never touches the image's torch or
transformers, works whether or not any of them is installed there already (the target dir comes first on the
stages' PYTHONPATH), and is skipped when the same wheels are already in place.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
FROM_REQUIREMENTS = ("deepspeed", "webdataset", "soundfile", "geomloss")
"""Pinned in requirements.txt (one source of truth); their dependencies the image lacks are pinned below."""
DEPENDENCIES = {
    "hjson": "3.1.0", "pydantic": "2.14.4", "pydantic-core": "2.50.5", "annotated-types": "0.8.0",
    "typing-inspection": "0.4.5",
    "typing-extensions": "4.16.0",  # pydantic needs >= 4.16; the image's may be older (newer is a superset)
    "braceexpand": "0.1.7", "cffi": "2.1.1", "pycparser": "3.12",
}
BUILT_HERE = ("deepspeed",)
"""Source-only on PyPI: built into a py3-none-any wheel (DS_BUILD_OPS=0)."""
NEVER = ("torch", "transformers", "triton", "numpy", "tokenizers", "safetensors")
"""The image's own stack: a wheel of these in the folder is refused, never installed over the image's."""
GPU_IMAGE = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
"""Python packages of the lent machines' image ('cuda'), as /work/.library/device/KINDS.md lists them."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    """``{distribution: version}`` of every wheel to carry."""
    found = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if m and normalize(m.group(1)) in FROM_REQUIREMENTS:
            found[normalize(m.group(1))] = m.group(2)
    missing = set(FROM_REQUIREMENTS) - set(found)
    if missing:
        raise SystemExit(f"requirements.txt pins none of {sorted(missing)}")
    return {**found, **DEPENDENCIES}


def wheel_dist(path: Path) -> str:
    return normalize(path.name.split("-")[0])


def tags_ok(path: Path) -> bool:
    """A cp312 (or abi3) wheel for manylinux x86_64, or pure Python."""
    py, abi, plat = path.name[:-4].split("-")[-3:]
    pys = set(py.split("."))
    python_ok = "cp312" in pys or "py3" in pys or (abi == "abi3" and any(p.startswith("cp3") for p in pys))
    platform_ok = all(p == "any" or (p.startswith("manylinux") and p.endswith("x86_64")) for p in plat.split("."))
    return python_ok and abi in ("cp312", "abi3", "none") and platform_ok


def build(out: Path) -> int:
    """Downloads / builds every wheel into `out` (existing right ones are kept) and prints the folder's size."""
    out.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    wanted = pins()
    have = {wheel_dist(w): w for w in out.glob("*.whl")}
    for dist, version in wanted.items():  # a stale version of a wanted wheel would be installed beside the new one
        if dist in have and f"-{version}-" not in have[dist].name:
            have.pop(dist).unlink()
    download = [f"{d}=={v}" for d, v in wanted.items() if d not in BUILT_HERE and d not in have]
    if download:
        platforms = [a for plat in PLATFORMS for a in ("--platform", plat)]
        subprocess.run([*pip, "download", "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
                        *platforms, "--no-deps", "-d", str(out), *download], check=True)
    for dist in BUILT_HERE:
        if dist not in have:
            env = {**os.environ, "DS_BUILD_OPS": "0"}
            subprocess.run([*pip, "wheel", f"{dist}=={wanted[dist]}", "--no-deps", "--no-build-isolation", "-w",
                            str(out)], check=True, env=env)
    wheels = sorted(out.glob("*.whl"))
    bad = [w.name for w in wheels if not tags_ok(w) or wheel_dist(w) not in wanted]
    if bad:
        raise SystemExit(f"not for the GPU machines (cp312 manylinux x86_64 or pure Python) or not wanted: {bad}")
    total = sum(w.stat().st_size for w in wheels)
    for w in wheels:
        print(f"  {w.stat().st_size / 2**20:6.2f} MiB  {w.name}")
    print(f"{len(wheels)} wheels, {total / 2**20:.2f} MiB in {out} (carry it: run(carry=['{out.name}']))")
    return 0


def install(wheels: Path, site: Path) -> dict:
    """Installs every wheel of `wheels` into `site` offline; skipped when the same wheels are there already."""
    files = sorted(w for w in wheels.glob("*.whl")) if wheels.is_dir() else []
    refused = [w.name for w in files if wheel_dist(w) in NEVER]
    files = [w for w in files if wheel_dist(w) not in NEVER]
    if not files:
        return {"skipped": f"no wheels in {wheels} (make gpu-wheels, then carry the folder)", "wheels": 0}
    stamp = site / ".wheels"
    manifest = "\n".join(f"{w.name} {w.stat().st_size}" for w in files)
    figures = {"wheels": len(files), "mb": round(sum(w.stat().st_size for w in files) / 1e6, 1), "site": str(site),
               "refused": refused}
    if stamp.is_file() and stamp.read_text() == manifest:
        return {**figures, "already": True}
    shutil.rmtree(site, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
                    "--disable-pip-version-check", "--no-warn-script-location", "--quiet", "--target", str(site),
                    *map(str, files)], check=True)
    shutil.rmtree(site / "tests", ignore_errors=True)  # a stray top-level `tests` would shadow this repo's
    stamp.write_text(manifest)
    return {**figures, "already": False, "pip_s": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="download / build the wheels (needs PyPI)")
    b.add_argument("--out", type=Path, default=REPO / "gpu_wheels")
    i = sub.add_parser("install", help="install them offline into a target dir")
    i.add_argument("--wheels", type=Path, default=REPO / "gpu_wheels")
    i.add_argument("--site", type=Path, default=REPO / ".gpu-site")
    args = p.parse_args(argv)
    if args.cmd == "build":
        return build(args.out)
    from tests.gpu.check import record

    figures = install(args.wheels, args.site)
    record("install", "figures", **figures)
    print("install:", figures)
    for name in figures.get("refused", []):
        print(f"install: refused {name}: the image's own torch/transformers/numpy stack is never replaced")
    return 0


if __name__ == "__main__":
    sys.exit(main())
