"""The typed SSA IR (graphs, text form, parser, verifier, interpreter).

Layer rule: `ir` imports only `dtypes`, `devices` and `ops`, never `codegen` or `runtime`.
"""
