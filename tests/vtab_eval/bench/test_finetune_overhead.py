"""The fine-tuning overhead benchmark's code path, at a tiny size (figures are the
benchmark's to print, not a test's to judge)."""

import re

from vtab_eval.bench import finetune_overhead
from vtab_eval.configs import transfer

RED = "tests/experts/bit/tiny/tiny_upstream/red/1"
SPEC = 'mini_dsprites(predicted_attribute="label_x_position",num_classes=16,config="tiny")'


def test_the_benchmark_splits_each_modules_time(hub_root, tmp_path, capsys):
    config = transfer.get_config("smoke")
    # Green and blue hold one program: blue's weights go into green's FineTuner.
    config.pool = ",".join(str(hub_root / RED.replace("red", c)) for c in ("red", "green", "blue"))
    config.update(suite=f"{SPEC};{SPEC.replace('x_position', 'orientation')}", image_size=8)
    config.data_dir = str(tmp_path / "tfds")
    finetune_overhead.main(config)
    out = capsys.readouterr().out
    assert (
        "3 modules x 2 tasks" in out and "FineTuners built 2, modules given their weights 1" in out
    )
    shares = re.findall(r"\| (\S+) \|[^\n]* ([\d.]+)% \|", out)
    assert [name for name, _ in shares][-1] == "all" and len(shares) == 4
    assert all(0 <= float(share) <= 100 for _, share in shares)
    assert re.search(r"test accuracies' digest: [0-9a-f]{16}", out)
