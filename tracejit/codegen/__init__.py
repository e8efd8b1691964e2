"""Code generation from IR graphs: LLVM (llvmlite) on CPU, CUDA C (NVRTC) on GPU.

Layer rule: `codegen` imports `ir` and below, never `runtime` or the front end.

- `llvm_cpu`: a `prim::FusionGroup` (elementwise ops of any dtype, row-wise and trailing
  reductions, softmax) becomes one native function (llvmlite, O3 for the host CPU, MCJIT),
  specialized for its input strides and split across threads when large; `llvm_jit` is its
  compile half (optimization for the host, object code, `Kernel`);
- `llvm_math`: vectorizable transcendentals emitted as IR, with tested error bounds;
- `blas`: matrix products and convolution through the CBLAS numpy ships, fused epilogues;
- `cache`: compiled object code on disk, keyed by a hash of IR, target and versions;
- `cuda_c`, `cuda_expr`, `cuda_reduce`, `nvrtc`: CUDA C for fusion groups (elementwise with 16-byte vector access; row
  kernels for reductions, softmax and layer norm with warp shuffles), compiled to PTX by NVRTC and cached.
"""
