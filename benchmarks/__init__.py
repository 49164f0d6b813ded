"""Throughput benchmarks of EGGROLL in torch against pure inference and the JAX reference.

``python -m benchmarks run --device cpu|cuda`` measures every workload of :mod:`.workloads` and
its baselines in one process, prints the ratios and writes a results JSON;
``python -m benchmarks report`` turns the results of each device into ``reports/PERFORMANCE.md``
and one throughput plot per device.
"""
