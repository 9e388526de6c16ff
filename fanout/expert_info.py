"""The schema of ``expert_info.json``, the file beside every hub module that says what
it is: one copy, read by the exporter that writes it (``hub_export/metadata.py``) and
by the pool that reads it (``vtab_eval/pool/expert_pool.py``), which import nothing of
each other."""

SCHEMA_VERSION = 1

# Top-level fields -> accepted JSON types. The last group is for packed adapters, the
# classifier and the EPN.
FIELDS: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "name": (str,),
    "kind": (str,),
    "handle": (str,),
    "publisher": (str,),
    "collection": (str,),
    "version": (int,),
    "node": (str, type(None)),
    "description": (str, type(None)),
    "arch": (str,),
    "feature_dim": (int,),
    "upstream": (dict,),
    "images_seen": (int,),
    "training": (dict,),
    "label_distribution": (dict,),
    "input": (dict,),
    "output": (dict,),
    "provenance": (dict,),
    "experts": (list,),
    "expert_nodes": (list,),
    "all_logits_nodes": (list,),
}
REQUIRED = ("schema_version", "name", "kind", "output")
