r"""Lists every module under a hub root with its info.

    python -m hub_export.catalog --config.hub_root=runs/demo/hub \
        [--config.kinds=full,adapter] [--config.json=true]

The table has one line per module: kind, handle (its path under the root, which is
also its tfhub.dev-style URL path), hierarchy node, output, images seen, size on disk.
``--config.json=true`` prints the catalog entries (``expert_info.json`` plus path, handle and
size_bytes) instead, without the bulky label lists and distributions. The config is
hub_export.export's (hub_export/config.py).
"""

from __future__ import annotations

import json

import fanout.flags
from fanout import cli, config_rules
from hub_export import config as export_config
from hub_export import tree

# Fields too big for a listing (thousands of entries each).
BULKY = ("label_distribution", "all_logits_nodes")


def summary(entry: dict) -> dict:
    slim = {k: v for k, v in entry.items() if k not in BULKY}
    if "labels" in slim.get("output", {}):
        slim["output"] = {**slim["output"], "labels": len(slim["output"]["labels"])}
    return slim


def _output(entry: dict) -> str:
    out = entry.get("output") or {}
    if "logits" in out:
        return f"logits[{out['logits'][-1]}]"
    if "all_experts" in out:
        return f"features[{out['all_experts'][1]}x{out['all_experts'][2]}]"
    if "feature_vector" in out:
        return f"features[{out['feature_vector'][-1]}]"
    return "?"


def format_table(entries: list[dict]) -> str:
    rows = [("kind", "handle", "node", "output", "images seen", "MiB")]
    for e in entries:
        seen = e.get("images_seen")
        rows.append(
            (
                str(e.get("kind")),
                e["handle"],
                e.get("node") or "-",
                _output(e),
                f"{seen:,}" if seen is not None else "-",
                f"{e['size_bytes'] / 2**20:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    total = sum(e["size_bytes"] for e in entries)
    lines.append(f"{len(entries)} modules, {total / 2**20:.1f} MiB")
    return "\n".join(lines)


def main(config):
    with cli.user_errors("hub_export.catalog"):
        config_rules.check(config, export_config.RULES)
    execute(config.hub_root, config.kinds, config.json)


def execute(hub_root: str, kinds: str = "", as_json: bool = False) -> None:
    """Prints the catalog of ``kinds`` (comma-separated; empty: every kind); a missing
    root, an unknown kind or a corrupt expert_info.json is one line."""
    with cli.user_errors("hub_export.catalog", (tree.ExportError,)):
        wanted = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = [k for k in wanted if k not in tree.KINDS]
        if unknown:
            raise ValueError(
                f"--config.kinds: unknown kind {unknown[0]!r}; choose from {', '.join(tree.KINDS)}"
            )
        entries = tree.catalog(hub_root)
        entries = [e for e in entries if not wanted or e.get("kind") in wanted]
    if as_json:
        print(json.dumps([summary(e) for e in entries], indent=1))
    else:
        print(format_table(entries))


# Old spellings, each refused in one line naming the new one.
RENAMED = {"hub_root": "--config.hub_root", "kind": "--config.kinds", "json": "--config.json"}

if __name__ == "__main__":
    fanout.flags.launch(
        main, "hub_export.catalog", "hub_export/config.py", workdir=False, renamed=RENAMED
    )
