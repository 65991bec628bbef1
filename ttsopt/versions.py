"""Versions of the tools that made or measured something: recorded in manifests and benchmark reports."""

from __future__ import annotations

import platform
from importlib import metadata

#: What a package is made with.
BUILD_TOOLS = ("ttsopt", "torch", "onnx", "onnxruntime", "onnxslim", "numpy")


def tool_versions(tools: tuple[str, ...] = BUILD_TOOLS, missing: str | None = "not installed") -> dict[str, str]:
    """``{"python": ..., tool: version}``; a tool that is not installed is given as ``missing``, or left out if None."""
    versions = {"python": platform.python_version()}
    for tool in tools:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            if missing is not None:
                versions[tool] = missing
    return versions
