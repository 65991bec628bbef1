"""An opened package: its manifest, and onnxruntime sessions for its graphs created on first use."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.package.golden import Golden
from ttsopt.package.manifest import GraphEntry, Manifest, read_manifest
from ttsopt.runtime import session_options
from ttsopt.runtime.threads import taking_turns, use_shared_pool

log = logging.getLogger("ttsopt")
#: Missing execution providers already reported in this process.
_SAID_MISSING: set[tuple[str, ...]] = set()

_OPT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}
_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32, "bool": np.bool_}


class Package:
    """A verified-on-load package.  ``run(graph, inputs)`` checks inputs against the manifest's specs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path, check_files=True)
        self._sessions: dict[str, object] = {}

    @functools.cached_property
    def golden(self) -> Golden:
        """The golden inputs and original-model outputs stored at export (read on first use)."""
        return Golden(self.path, self.manifest.golden)

    def session(self, name: str):
        if name not in self._sessions:
            self._sessions[name] = self._create_session(name)
        return self._sessions[name]

    def release(self, name: str | None = None) -> None:
        """Let go of the session of graph ``name`` (all of them for ``None``); the next :meth:`run` makes it again.
        For commands that visit every graph once (verification, quantization): holding every session at once is
        what made their peaks (a real-size RoBERTa session is 1.3 GB)."""
        if name is None:
            self._sessions.clear()
        else:
            self._sessions.pop(name, None)

    def _create_session(self, name: str):
        entry = self.manifest.graphs[name]
        if self.manifest.tensorrt.get("engines") and name not in self.manifest.tensorrt.get("onnxruntime", {}):
            from ttsopt.hardware import gpu_identity
            from ttsopt.runtime.engines import EngineSession, engine_problem, installed_tensorrt

            problem = engine_problem(self.manifest.tensorrt, name, gpu_identity(), installed_tensorrt())
            if problem is None:
                record = self.manifest.tensorrt
                return EngineSession(str(self.path / record["engines"][name]["file"]), record["profiles"][name],
                                     [spec.name for spec in entry.outputs])
            log.warning("graph %s: TensorRT engine not used (%s); running it on onnxruntime", name, problem)
        return taking_turns(self._create_ort_session(entry), name)

    def _create_ort_session(self, entry: GraphEntry):
        import onnxruntime as ort

        settings = self.manifest.target["runtime"]
        options = ort.SessionOptions()
        ort_settings = settings.get("onnxruntime", {})
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVELS[ort_settings.get("graph_optimization_level", "all")])
        if not use_shared_pool(options):
            options.intra_op_num_threads = int(ort_settings.get("intra_op_num_threads", 0))
            options.inter_op_num_threads = int(ort_settings.get("inter_op_num_threads", 1))
        options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if ort_settings.get("execution_mode") == "parallel"
                                  else ort.ExecutionMode.ORT_SEQUENTIAL)
        options.enable_mem_pattern = bool(ort_settings.get("enable_mem_pattern", False))
        options.log_severity_level = 3
        available = set(ort.get_available_providers())
        providers = [p for p in settings["providers"] if p in available]
        session_options.apply(options, providers or [session_options.CPU])
        missing = tuple(p for p in settings["providers"] if p not in available)
        if (providers != settings["providers"][: len(providers)] or not providers) and missing not in _SAID_MISSING:
            _SAID_MISSING.add(missing)  # said once per process, not once per graph
            log.warning("execution providers %s are not available here; running on %s",
                        list(missing), providers or ["CPUExecutionProvider"])
        try:
            session = ort.InferenceSession(str(self.path / entry.file), options,
                                           providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise TtsoptError(f"package {self.path}: onnxruntime cannot load {entry.file} "
                              f"({str(exc).splitlines()[0][:160]}): re-export the package") from None
        return session

    def run(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entry = self.manifest.graphs[name]
        feed = {}
        sizes: dict[str, int] = {}
        for spec in entry.inputs:
            if spec.name not in inputs:
                raise TtsoptError(f"graph {name} needs input {spec.name!r}")
            array = np.asarray(inputs[spec.name], dtype=_NUMPY_DTYPES[spec.dtype], order="C")  # keeps 0-d arrays 0-d
            if array.ndim != len(spec.shape):
                raise TtsoptError(f"{spec.name} must have {len(spec.shape)} dims {list(spec.shape)}, got shape {list(array.shape)}")
            for axis, (want, got) in enumerate(zip(spec.shape, array.shape, strict=False)):
                if isinstance(want, int) and want != got:
                    raise TtsoptError(f"{spec.name} must have size {want} on axis {axis} {list(spec.shape)}, got {list(array.shape)}")
                if isinstance(want, str):
                    if sizes.setdefault(want, got) != got:
                        raise TtsoptError(f"inputs disagree on {want}: {sizes[want]} vs {got}")
                    bounds = entry.dims[want]
                    if not bounds.contains(got):
                        raise TtsoptError(f"{spec.name}: {want} = {got} is outside the package's range "
                                          f"[{bounds.min}, {bounds.max}]: split the input or re-export with a wider range")
            feed[spec.name] = array
        outputs = self.session(name).run(None, feed)
        return {spec.name: value for spec, value in zip(entry.outputs, outputs, strict=False)}

    def run_prepared(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`run` for inputs the runtime built itself (every input present, contiguous, in range): only
        the dtypes are matched to the graph's. What a GPT decode step calls, 49 inputs each: under cProfile, 300
        real-size steps spent 0.38 s in :meth:`run`'s checks of the 0.69 s of Python outside onnxruntime (0.04 s
        in this method)."""
        entry = self.manifest.graphs[name]
        feed = {spec.name: inputs[spec.name] if inputs[spec.name].dtype == _NUMPY_DTYPES[spec.dtype]
                else inputs[spec.name].astype(_NUMPY_DTYPES[spec.dtype]) for spec in entry.inputs}
        outputs = self.session(name).run(None, feed)
        return {spec.name: value for spec, value in zip(entry.outputs, outputs, strict=False)}
