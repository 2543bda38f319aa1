pytest_plugins = ["polling.fakes.pytest_plugin"]
