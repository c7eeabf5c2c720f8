pytest_plugins = ["tests.infra.fixtures", "tests.support.gcp"]
