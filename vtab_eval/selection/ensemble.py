"""Ensembles of the top experts (Mustafa et al. 2020, "Deep Ensembles for Low-Data
Transfer Learning"): methods that combine several modules instead of picking one.

- `ensemble`: the top `config.ensemble` candidates of a proxy's ranking
  (`config.ensemble_proxy`, kNN by default) are fine-tuned with the protocol and
  combined greedily on val200 (finetune/ensemble.py).
- `ensemble_heads`: the cheaper variant: a logistic head on each one's frozen features
  (finetune/heads.py), combined the same way.

Neither scores modules itself: the runner ranks with the proxy's own selection and
builds the ensemble from it (``vtab_eval.ensembles``), so `score` is never called.
"""

from __future__ import annotations

from vtab_eval.selection.base import Context, Selector, register


class _Ensemble(Selector):
    needs = "features"  # the proxy's (kNN's and every feature proxy's)
    uses_labels = True

    def score(self, task, ctx: Context):
        raise ValueError(
            f"{self.name} combines the top experts of a proxy's ranking; the transfer run "
            "builds it (--config.ensemble), no selection call does"
        )


@register
class FineTunedEnsemble(_Ensemble):
    name = "ensemble"
    display_name = "Ensemble of the top experts (fine-tuned)"
    combines = "finetuned"
    table_row = 96


@register
class HeadsEnsemble(_Ensemble):
    name = "ensemble_heads"
    display_name = "Ensemble of logistic heads (top experts, frozen)"
    combines = "heads"
    table_row = 95
