"""Readers and atomic writers: NIfTI, JSON sidecars, HDF5."""

from mrisr.io.atomic import atomic_path, write_json, read_json
from mrisr.io.nifti import read_nifti, write_nifti, to_ras

__all__ = ["atomic_path", "write_json", "read_json", "read_nifti", "write_nifti", "to_ras"]
