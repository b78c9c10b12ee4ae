"""Benchmarks of nodeops against its peers on the local lab: `invoke bench` (bench/README.md)."""
