"""Model store: atomic, verified model directories (manifest + safetensors)."""

from reelrec.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_parquet
from reelrec.store.manifest import Manifest, read_file, read_manifest, write_model_dir

__all__ = [
    "Manifest",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_parquet",
    "read_file",
    "read_manifest",
    "write_model_dir",
]
