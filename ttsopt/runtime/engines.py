"""TensorRT engines at run time: used only where they were built for, otherwise onnxruntime, with a warning.

An engine is tied to the TensorRT version that built it and to the GPU's compute capability (exactly,
unless it was built hardware-compatible for Ampere and later). When either differs, or TensorRT or
the GPU is missing, the package falls back to onnxruntime (CUDA, then CPU) and says why.
"""

from __future__ import annotations

import numpy as np

ENGINE_DIR = "engines"
TIMING_CACHE = f"{ENGINE_DIR}/timing.cache"


def installed_tensorrt() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def engine_problem(record: dict, graph: str, gpu: dict | None, tensorrt_version: str | None) -> str | None:
    """Why ``graph``'s engine (``record``: the manifest's ``tensorrt`` section) cannot run here; None if it can."""
    if graph not in record.get("engines", {}):
        return "the package has no TensorRT engine for it (run `ttsopt build` on the target GPU)"
    if tensorrt_version is None:
        return "TensorRT is not installed here"
    if gpu is None:
        return "no NVIDIA GPU found here"
    if tensorrt_version != record["tensorrt_version"]:
        return f"it was built with TensorRT {record['tensorrt_version']}, this machine has {tensorrt_version}"
    built = record["gpu"]["compute_capability"]
    if record["settings"].get("hardware_compatibility", "none").lower() == "ampere_plus":
        if gpu["compute_capability"][0] < 8:
            return f"it was built for Ampere and later, this GPU ({gpu['name']}) is sm_{''.join(map(str, gpu['compute_capability']))}"
    elif gpu["compute_capability"] != built:
        return (f"it was built for sm_{''.join(map(str, built))} ({record['gpu']['name']}), "
                f"this GPU ({gpu['name']}) is sm_{''.join(map(str, gpu['compute_capability']))}")
    return None


def profile_for(profiles: list[dict], shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Index of the first optimization profile whose (min, max) ranges hold ``shapes``; None if none does."""
    for index, profile in enumerate(profiles):
        if all(all(low <= size <= high for size, low, high in zip(shapes[name], bounds[0], bounds[2], strict=True))
               for name, bounds in profile["shapes"].items()):
            return index
    return None


class EngineSession:
    """A TensorRT engine with onnxruntime's ``run(None, feed)`` interface, through polygraphy's TrtRunner.

    The engine holds one optimization profile per utterance class (short / typical / long); each call
    picks the first profile whose ranges hold the inputs' shapes."""

    def __init__(self, engine_path: str, profiles: list[dict], output_names: list[str]):
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner

        self._runner = TrtRunner(EngineFromBytes(BytesFromPath(engine_path)))
        self._runner.activate()
        self._profiles = profiles
        self._outputs = output_names
        self._active = 0

    def run(self, _outputs, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        index = profile_for(self._profiles, {name: value.shape for name, value in feed.items()})
        if index is None:
            raise ValueError(f"no optimization profile holds shapes {({k: v.shape for k, v in feed.items()})}")
        if index != self._active:
            self._runner.set_profile(index)
            self._active = index
        outputs = self._runner.infer(feed, copy_outputs_to_host=True)
        return [np.asarray(outputs[name]) for name in self._outputs]
