"""What a model card is made of, before it is drawn: where it lives, the config section it states, the
decisions it keeps, the version's status, and the text helpers both renderers use. No Airflow, no MLflow.

A version's card lives in its training run's artifacts: ``model_card/model_card.md``,
``model_card/model_card.html`` and ``model_card/card.json`` (the config section it was registered with
and every decision written on it since, so a later rewrite, a rollback say, needs no config). Every
value that reaches a card is hostile: :func:`clean` drops control and bidi characters, replaces lone
surrogates and clips; :func:`jsonable` bounds whole records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.metrics import is_finite_number

CARD_DIR = "model_card"
CARD_HTML, CARD_MD = "model_card.html", "model_card.md"
CARD_FILES = (CARD_HTML, CARD_MD)
CARD_STATE = f"{CARD_DIR}/card.json"
CARD_TAG = "mlops.model_card.written_at"  # version tag: when its card was last written
CARDS_ROUTE = "/mlops/cards"  # the plugin serves /mlops/cards/<model>/<version>/<file>
CONFIG_KEYS = ("description", "owners", "limitations")
MAX_DECISIONS, MAX_ROWS, MAX_TEXT, MAX_CELL = 20, 100, 4000, 500
_DROP = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")
_SAFE_URL = re.compile(r"https?://[^\s<>\"'`\\()]+", re.IGNORECASE)


# -- text ------------------------------------------------------------------------------------------
def clean(value: Any, limit: int = MAX_CELL) -> str:
    """``value`` as text: control and bidi characters dropped, lone surrogates replaced, clipped."""
    text = (value if isinstance(value, str) else str(value))[: limit + 1]  # never work on a huge value
    text = _DROP.sub("", text.encode("utf-8", "replace").decode("utf-8"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def num(value: Any) -> str:
    """A number as a card shows it: 6 significant digits, NaN/inf "not finite", None "—"; else text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_finite_number(value):
        return f"{float(value):.6g}"
    return "not finite" if isinstance(value, int | float) else clean(value)


def md_escape(text: Any, limit: int = MAX_TEXT) -> str:
    """Text a Markdown renderer shows literally: every inline-syntax character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text, limit))


def safe_url(url: Any) -> bool:
    """An http(s) URL with nothing that could leave an HTML attribute or a Markdown link."""
    return isinstance(url, str) and len(url) <= 2000 and _SAFE_URL.fullmatch(url) is not None


def jsonable(value: Any, depth: int = 0) -> Any:
    """A bounded JSON-safe copy: text cleaned and clipped, non-finite or huge numbers None, at most
    :data:`MAX_ROWS` items per list or mapping, anything nested deeper than 4 levels as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if is_finite_number(value) and abs(value) < 2**63 else None
    if isinstance(value, str) or depth >= 4:
        return clean(value, MAX_TEXT)
    if isinstance(value, Mapping):
        return {clean(k, 200): jsonable(v, depth + 1) for k, v in list(value.items())[:MAX_ROWS]}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in value[:MAX_ROWS]]
    return clean(value, MAX_TEXT)


def card_path(model_name: str, version: Any) -> str:
    """Where the plugin serves a version's HTML card, each part URL-encoded."""
    return f"{CARDS_ROUTE}/{quote(model_name, safe='')}/{quote(str(version), safe='')}/{CARD_HTML}"


# -- the config section ----------------------------------------------------------------------------
def _strings(raw: Any, key: str, limit: int) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list | tuple) or not all(isinstance(x, str) for x in raw):
        raise InvalidInputError(f"model_card.{key} must be a list of strings, got {clean(repr(raw), 200)}")
    return [clean(x, limit) for x in raw[:50] if x.strip()]


def card_config(raw: Any) -> dict[str, Any]:
    """The card's part of the config (``model.description``, ``model.owners``, ``model.limitations``).
    A wrong type fails naming the key; long values are clipped, never refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"model_card must be a mapping of {CONFIG_KEYS}, got {type(raw).__name__}")
    unknown = sorted(clean(k, 100) for k in raw if k not in CONFIG_KEYS)
    if unknown:
        raise InvalidInputError(f"model_card: unknown key(s) {unknown}; allowed {list(CONFIG_KEYS)}")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidInputError(f"model_card.description must be text, got {type(description).__name__}")
    return {
        "description": clean(description, MAX_TEXT) if description and description.strip() else None,
        "owners": _strings(raw.get("owners"), "owners", 200),
        "limitations": _strings(raw.get("limitations"), "limitations", 1000),
    }


# -- the card's record -----------------------------------------------------------------------------
def read_state(raw: Any) -> dict[str, Any]:
    """The card record (``card.json``) read leniently: anything malformed is left out."""
    raw = raw if isinstance(raw, Mapping) else {}
    try:
        config = card_config(raw.get("config"))
    except InvalidInputError:
        config = card_config(None)
    found = raw.get("decisions")
    decisions = [jsonable(d) for d in found if isinstance(d, Mapping)] if isinstance(found, list) else []
    return {"format": 1, "config": config, "decisions": decisions[-MAX_DECISIONS:]}


def decision_record(summary: Mapping[str, Any], at: str) -> dict[str, Any]:
    """What a card keeps of a gate summary: every key (bounded) and when it was written."""
    record: dict[str, Any] = jsonable(dict(summary))
    record["at"] = at
    return record


def add_decision(state: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Append ``record`` to the state's decisions; the same decision written again (a retry) replaces
    the last one instead."""
    decisions = state.setdefault("decisions", [])
    same = ("decision", "decided_by", "reason", "new_version", "alias")
    if decisions and all(decisions[-1].get(k) == record.get(k) for k in same):
        decisions.pop()
    decisions.append(dict(record))
    del decisions[:-MAX_DECISIONS]


def approval_of(event: Any) -> dict[str, Any] | None:
    """Who answered a human-in-the-loop request, when, the answer and a comment (from its event)."""
    if not isinstance(event, Mapping):
        return None
    user = event.get("responded_by_user")
    by = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else user
    params = event.get("params_input")
    params = params if isinstance(params, Mapping) else {}
    comment = next((params[k] for k in ("comment", "reason", "note") if params.get(k)), None)
    chosen = event.get("chosen_options")
    chosen = chosen if isinstance(chosen, list) else []
    answer = "timed out" if event.get("timedout") else ", ".join(map(str, chosen)) or "no answer"
    at: Any = event.get("responded_at")
    at = at.isoformat() if hasattr(at, "isoformat") else at
    return dict(jsonable({"by": by or None, "at": at, "answer": answer, "comment": comment}))


def _move_status(move: Mapping[str, Any], version: str, alias: str) -> str:
    to = move.get("to")
    other = num(move.get("from") if to == version else to)
    if move.get("action") == "rollback":
        if to == version:
            return f"Restored as {alias} by a rollback (from version {other})."
        return f"Rolled back: {alias} moved back to version {other}."
    if to == version:
        return f"Holds {alias} ({clean(move.get('action') or 'move', 50)})."
    return f"Replaced as {alias} by version {other}."


def status(version: str, decisions: Sequence[Mapping[str, Any]], moves: Sequence[Mapping[str, Any]]) -> str:
    """The latest thing that happened to ``version``: its last decision or alias move (a ``skipped`` no-op
    never has the last word). Times are to the second: within the second of the last decision, the move
    it made (the first move to the version then, for a promotion) and the moves before it come first,
    any other move after it; otherwise record order."""
    when = [str(m.get("when") or "") for m in moves]
    later = list(range(len(moves)))
    decided = [(str(d.get("at") or d.get("decided_at") or ""), i) for i, d in enumerate(decisions)]
    decided = [(at, i) for at, i in decided if decisions[i].get("decision") != "skipped"]
    if decided:
        at, index = max(decided)
        moved = decisions[index].get("decision") in ("promoted", "shadow")
        own = (
            next((i for i in later if when[i] == at and moves[i].get("to") == version), None)
            if moved
            else None
        )
        later = [i for i in later if when[i] > at or (when[i] == at and (own is None or i > own))]
    if later:
        move = moves[max(later, key=lambda i: (when[i], i))]
        return _move_status(move, version, f"@{clean(move.get('alias') or 'champion', 250)}")
    if not decided:
        return "Registered: no decision yet."
    last = decisions[index]
    alias = f"@{clean(last.get('alias') or 'champion', 250)}"
    approval = last.get("approval") if isinstance(last.get("approval"), Mapping) else None
    by = f" by {clean(approval.get('by') or 'nobody', 200)}" if approval else ""
    decision, reason = last.get("decision"), clean(last.get("reason") or "", 600)
    if decision == "pending":
        return f"Pending approval: the gates passed; a person must approve the move to {alias}."
    if decision == "promoted":
        return f"Approved{by} and promoted to {alias}." if approval else f"Promoted to {alias}."
    if decision == "shadow":
        return "Promoted in shadow as @challenger: labelled live rows decide."
    if decision == "refused":
        answer = f" ({clean(approval.get('answer'), 50)}{by})" if approval else ""
        return f"Refused{answer}: {reason}"
    return f"Decision {clean(decision, 50)}: {reason}"


def registry_description(
    description: Any, name: str, version: str, run_id: str | None, card_link: str | None
) -> str:
    """The registered model's description (Markdown, within MLflow's 5000 characters): the config's
    intended use, then where the champion's card is: the MLflow artifact and, when Airflow's base URL
    is known, its page in Airflow."""
    run = re.sub(r"[^0-9A-Za-z_-]", "", str(run_id or ""))[:64]
    where = f"`runs:/{run}/{CARD_DIR}/{CARD_MD}` (MLflow artifact)" if run else "no training run recorded"
    page = f"; in Airflow: <{card_link}>" if safe_url(card_link) else ""
    footer = f"**Champion: version {md_escape(version, 20)}** of {md_escape(name, 300)}. Model card: {where}{page}."
    intro, budget = md_escape(description or "", MAX_TEXT), 4900 - len(footer) - 2
    if len(intro) > budget:  # cut escaped text: never leave a dangling backslash
        intro = intro[: budget - 1].rstrip("\\") + "…"
    return f"{intro}\n\n{footer}" if intro else footer


def parse_json(raw: Any) -> Any:
    """``raw`` parsed when it is JSON text, else None."""
    try:
        return json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
