"""Video providers side by side; `auto.make_provider` picks one from the settings."""
