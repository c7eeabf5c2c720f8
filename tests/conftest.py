pytest_plugins = ["tests.infra.fixtures", "tests.infra.aws_fixtures", "tests.support.gcp"]
