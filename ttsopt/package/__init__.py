"""The package directory and its ``manifest.json``: the contract between ttsopt's stages.

Torch-free: both the build side (which writes packages) and the runtime (which reads them) use it.
"""

from ttsopt.package.manifest import MANIFEST_NAME, SCHEMA_VERSION, DimRange, GraphEntry, Manifest, TensorSpec, read_manifest
from ttsopt.package.writer import PackageWriter

__all__ = ["MANIFEST_NAME", "SCHEMA_VERSION", "DimRange", "GraphEntry", "Manifest", "PackageWriter",
           "TensorSpec", "read_manifest"]
