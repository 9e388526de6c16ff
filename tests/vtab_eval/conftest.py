"""Fixtures shared by the vtab_eval tests: a tiny hub tree and colour tasks."""

import pytest

from tests.vtab_eval import hub_fixtures


@pytest.fixture(scope="session")
def hub_root(tmp_path_factory):
    return hub_fixtures.make_pool(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="session")
def red_task():
    return hub_fixtures.colour_task("colour_red", hub_fixtures.REDDISH)


@pytest.fixture(scope="session")
def green_task():
    return hub_fixtures.colour_task("colour_green", hub_fixtures.GREENISH, seed=1)
