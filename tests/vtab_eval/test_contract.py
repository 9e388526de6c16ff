"""The vtab_eval test fixtures meet the same hub module contract as real exports."""

from pathlib import Path

from tests import hub_contract
from vtab_eval.pool import expert_pool as pool


def test_every_fixture_expert_meets_the_hub_contract(hub_root):
    for expert in pool.open_pool(str(hub_root)).experts:
        hub_contract.check_feature_module(Path(expert.handle))
