"""CUDA twins of the CPU kernels (same argument order), plus host-side launch helpers."""
