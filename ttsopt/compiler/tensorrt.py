"""``ttsopt build``: TensorRT engines for a GPU package, built and verified on the machine that has the GPU.

A thin layer over polygraphy's TensorRT API. Everything it consumes is decided and tested earlier:
the ONNX graphs already carry their precision (FP16 casts, INT8 Q/DQ), because TensorRT 11 builds
*strongly typed* networks only (no FP16/INT8 builder flags; on 10.x the STRONGLY_TYPED flag is set);
the optimization profiles come from each graph's declared shape ranges (:func:`optimization_profiles`);
the build settings come from the target profile (``configs/<target>.yaml``, ``tensorrt:``).

The engines are checked against the package's golden outputs with the same gates as the ONNX graphs
before the package is written, because TensorRT has shipped silently wrong builds. The timing cache
is kept in the package so a rebuild on the same GPU is fast. TensorRT cannot be installed in ttsopt's
CI (its wheels fetch their libraries from NVIDIA's index), so this module is exercised on GPU machines
only; its inputs (graphs, profiles, settings) are tested everywhere.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

from ttsopt.errors import TtsoptError
from ttsopt.hardware import gpu_identity
from ttsopt.package import PackageWriter
from ttsopt.package.manifest import GraphEntry, Manifest
from ttsopt.runtime.engines import ENGINE_DIR, TIMING_CACHE

#: Optimization profiles per graph. Length dims are split into short, typical and long utterances around
#: the declared ``opt``, so each profile's kernels are tuned for its sizes; ``batch`` keeps its declared
#: range except in the long profile, which serves one utterance at a time (batch up to its ``opt``):
#: 16 long utterances at once would size every activation buffer for them.
PROFILE_NAMES = ("short", "typical", "long")


def _narrow(profile: str, low: int, opt: int, high: int) -> tuple[int, int, int]:
    if low == high:
        return low, low, high
    if profile == "short":
        return low, max(low, opt // 4), opt
    if profile == "typical":
        return low, opt, min(high, 4 * opt)
    return min(opt, high), min(high, 4 * opt), high


def optimization_profiles(entry: GraphEntry) -> list[dict]:
    """TensorRT optimization profiles for a graph: for each profile, every input's (min, opt, max) shape."""
    profiles = []
    for name in PROFILE_NAMES:
        sizes = {dim: _narrow(name, r.min, r.opt, r.max) for dim, r in entry.dims.items()}
        if "batch" in entry.dims:
            batch = entry.dims["batch"]
            sizes["batch"] = (batch.min, batch.opt, batch.opt if name == "long" else batch.max)
        shapes = {}
        for spec in entry.inputs:
            bounds = [sizes[d] if isinstance(d, str) else (d, d, d) for d in spec.shape]
            shapes[spec.name] = [[b[i] for b in bounds] for i in range(3)]
        profiles.append({"name": name, "shapes": shapes})
    unique = []
    for profile in profiles:  # a graph without length dims needs one profile, not three equal ones
        if all(profile["shapes"] != kept["shapes"] for kept in unique):
            unique.append(profile)
    return unique


def engine_plan(manifest: Manifest, contrib_graphs: set[str] = frozenset()) -> dict:
    """What ``ttsopt build`` will need, written into the manifest at export: settings, profiles, status.

    ``contrib_graphs`` use onnxruntime's own operators (``com.microsoft``, e.g. the GPT's GroupQueryAttention), which
    TensorRT's ONNX parser does not know: they get no engine and run on onnxruntime (``"onnxruntime"``)."""
    settings = manifest.target.get("tensorrt")
    if settings is None:
        return {}
    return {"settings": settings,
            "profiles": {name: optimization_profiles(entry) for name, entry in manifest.graphs.items() if name not in contrib_graphs},
            "onnxruntime": {name: "onnxruntime contrib operators (com.microsoft), which TensorRT does not parse"
                            for name in sorted(contrib_graphs)},
            "engines": {}, "status": "not built: run `ttsopt build PACKAGE` on a machine with the target GPU and TensorRT"}


def tensorrt_available() -> str | None:
    """Why engines cannot be built here, or None when TensorRT, polygraphy and a CUDA GPU are present."""
    for module in ("tensorrt", "polygraphy"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (on the GPU machine: pip install 'ttsopt[gpu]')"
    import tensorrt as trt

    try:
        trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as exc:  # TensorRT raises TypeError when CUDA cannot initialise
        return f"TensorRT {trt.__version__} is installed but finds no usable CUDA GPU ({exc})"
    return None


def _build_one(onnx_path: Path, engine_path: Path, profiles: list[dict], settings: dict, timing_cache: Path) -> None:
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, EngineFromNetwork, NetworkFromOnnxPath, Profile, SaveEngine

    trt_profiles = []
    for profile in profiles:
        trt_profile = Profile()
        for name, (low, opt, high) in profile["shapes"].items():
            trt_profile.add(name, min=low, opt=opt, max=high)
        trt_profiles.append(trt_profile)
    hardware = getattr(trt.HardwareCompatibilityLevel, settings.get("hardware_compatibility", "NONE").upper())
    config = CreateConfig(profiles=trt_profiles, load_timing_cache=str(timing_cache) if timing_cache.exists() else None,
                          builder_optimization_level=int(settings.get("builder_optimization_level", 3)),
                          hardware_compatibility_level=hardware,
                          memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(settings.get("workspace_mib", 2048)) << 20})
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=True)
    SaveEngine(EngineFromNetwork(network, config=config, save_timing_cache=str(timing_cache)), str(engine_path))()


def build_engines(source: Path, out: Path, step: Callable[[str], None] = lambda message: None,
                  replace: bool = False) -> Manifest:
    """Build, verify and record an engine per graph of the GPU package ``source`` into the package ``out``
    (``out`` may be ``source``: the package gets its engines in place; any other existing package only with ``replace``)."""
    from ttsopt.runtime.package import Package
    from ttsopt.verify import verify_golden

    manifest = Package(source).manifest
    plan = manifest.tensorrt
    if not plan:
        raise TtsoptError(f"{source} was exported for target {manifest.target['name']}, which has no TensorRT "
                          "settings: export with --target t4 or --target a10g")
    reason = tensorrt_available()
    if reason:
        raise TtsoptError(f"cannot build TensorRT engines here: {reason}")
    import tensorrt as trt
    gpu = gpu_identity()
    with PackageWriter(out, replace=replace or Path(out).absolute() == Path(source).absolute()) as writer:
        for relative in manifest.files:
            writer.copy_in(source / relative, relative)
        writer.path(ENGINE_DIR).mkdir(exist_ok=True)
        timing_cache = writer.path(TIMING_CACHE)
        if (source / TIMING_CACHE).exists():
            shutil.copy2(source / TIMING_CACHE, timing_cache)
        engines = {}
        for name, profiles in plan["profiles"].items():
            entry = manifest.graphs[name]
            step(f"building the TensorRT engine of {name} ({len(profiles)} profiles)")
            engine = f"{ENGINE_DIR}/{name}.engine"
            _build_one(source / entry.file, writer.path(engine), profiles, plan["settings"], timing_cache)
            engines[name] = {"file": engine}
        manifest.tensorrt = {**plan, "engines": engines, "gpu": gpu, "tensorrt_version": trt.__version__,
                             "timing_cache": TIMING_CACHE, "status": f"built on {gpu['name']}"}
        writer.write_manifest(manifest)
        step("verifying the engines against the golden outputs")
        report = verify_golden(Package(writer.scratch))
        manifest.verification = {**manifest.verification, "tensorrt": report.to_dict()}
        report.require(f"the TensorRT engines fail the {manifest.precision} gates")
        writer.write_manifest(manifest)
        writer.commit()
    return manifest
