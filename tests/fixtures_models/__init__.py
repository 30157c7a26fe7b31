"""Models defined in Python, for ``package.module:callable`` specs (tests/test_model_sources.py).

Importable as ``fixtures_models.nets:TwoHeads`` from the ``tests`` folder, the way a user's own
package is importable from the folder that holds it.
"""
