"""What only the demo and the tests need: the embedded AWS (which imports moto) and `make demo`.

A package of its own beside `vaultline`, so the Lambda layer, which ships `vaultline` whole, never holds it.
"""
