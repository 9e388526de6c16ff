r"""Lists every module under a hub root with its info.

    python -m hub_export.catalog --hub_root=runs/demo/hub [--kind=full] [--json]

The table has one line per module: kind, handle (its path under the root, which is
also its tfhub.dev-style URL path), hierarchy node, output, images seen, size on disk.
``--json`` prints the catalog entries (``expert_info.json`` plus path, handle and
size_bytes) instead, without the bulky label lists and distributions.
"""

from __future__ import annotations

import json

from absl import app, flags

from fanout import cli
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


def define_flags() -> None:
    flags.DEFINE_string("hub_root", "runs/hub", "Root of the hub tree.")
    flags.DEFINE_enum("kind", None, list(tree.KINDS), "Only modules of this kind.")
    flags.DEFINE_bool("json", False, "Print JSON instead of a table.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    execute(flags.FLAGS.hub_root, flags.FLAGS.kind, flags.FLAGS.json)


def execute(hub_root: str, kind: str | None = None, as_json: bool = False) -> None:
    """Prints the catalog; a missing root or a corrupt expert_info.json is one line."""
    with cli.user_errors("hub_export.catalog", (tree.ExportError,)):
        entries = tree.catalog(hub_root, kind)
    if as_json:
        print(json.dumps([summary(e) for e in entries], indent=1))
    else:
        print(format_table(entries))


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.flags_parser("hub_export.catalog"))
