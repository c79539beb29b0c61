"""canvasflow's benchmarks: one command (`python -m bench`) that starts what it needs,
measures the hub and the pipeline beside their limits, prints a table and writes JSON.

Every load generator is a Python asyncio client on loopback; every loop is bounded in
count and in time. The README's "Performance" section says how to run it and read it.
"""
