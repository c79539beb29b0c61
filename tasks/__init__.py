"""The worker process: arq settings, jobs, providers, storage and the sweeper."""
