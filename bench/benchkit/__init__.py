"""Helpers of the benchmarks in ``bench/`` (not a benchmark: ``make bench`` runs only ``bench/*.py``).

- :mod:`benchkit.stack`: start services as OS processes (``lighter-stack run <service>``) on a
  private Redis, wait for their health, sample their RSS, stop them; machine facts; percentiles.
- :mod:`benchkit.tick_strategy`: the benchmark strategy of ``bench/tick_to_order.py`` (answers
  every BBO with a quote), run as its own process.
- :mod:`benchkit.rawhop`: the raw Redis floor, XADD -> XREADGROUP over three hops between processes.
"""
