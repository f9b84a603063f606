"""Store and catalog contracts: the one place their names, types and versions are defined.

Nothing is imported here: the model actor reads ``schemas.store`` and must not pay for
``schemas.catalog``'s pyarrow.
"""
