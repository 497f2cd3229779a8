"""The public API, one module per party; `enclavefl` serves every public name (see its docstring and docs/api.md).

    from enclavefl import DataOwnerClient, simulate      # what users write
    from enclavefl.api.public import PUBLIC               # the one table: public name -> defining module

This package imports nothing itself: `enclavefl job submit` (which uses `api/model_owner.py`) never imports torch
through the data owner's module.
"""
