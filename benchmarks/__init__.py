"""Benchmarks: each module has ``main()`` that prints one table; ``python -m benchmarks.run_all`` runs all."""
