"""ml_collections configs of the evaluation binary (`vtab_eval.main`)."""
