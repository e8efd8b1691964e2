"""Code generation from IR graphs: LLVM (llvmlite) on CPU, CUDA C (NVRTC) on GPU.

Layer rule: `codegen` imports `ir` and below, never `runtime` or the front end.

`llvm_cpu.lower_group` compiles a `prim::FusionGroup` of elementwise float ops into one
vectorized native loop (llvmlite, O3 for the host CPU, MCJIT).
"""
