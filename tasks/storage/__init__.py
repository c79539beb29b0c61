"""Object storage backends side by side; `auto.make_storage` picks one from the settings."""
