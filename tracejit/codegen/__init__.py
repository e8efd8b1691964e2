"""Code generation from IR graphs: LLVM (llvmlite) on CPU, CUDA C (NVRTC) on GPU.

Layer rule: `codegen` imports `ir` and below, never `runtime` or the front end.
"""
