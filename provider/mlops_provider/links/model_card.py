"""The "Model card" extra link of the register, promote and rollback tasks.

A version's card is an MLflow artifact of its training run (see :mod:`mlops_provider.hooks.model_card`);
the plugin serves it at ``/mlops/cards/<model>/<version>/model_card.html`` to a user who may read the
model's DAGs (the Models API's rule), with a sandboxing Content-Security-Policy. Operators persist the URL
at execute time (``ModelCardLink.persist(context, card_url(name, version))``); the link only reads XCom.
"""

from __future__ import annotations

from typing import Any

from mlops_provider.core.model_card_record import card_path
from mlops_provider.links.base import XComUrlLink


def card_url(model_name: str, version: Any) -> str:
    """The URL a browser opens for the card of ``model_name`` version ``version`` (a server path)."""
    return card_path(model_name, version)


class ModelCardLink(XComUrlLink):
    """The model card of the version a task registered, judged or restored."""

    name = "Model card"
    key = "model_card_url"
