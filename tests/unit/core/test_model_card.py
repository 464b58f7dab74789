"""The model card renderer and its records: every hostile value escaped in both outputs, bounded sizes,
non-finite numbers named, gate results drawn generically, the status of a version after each event."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.model_card import ModelCard, render_html, render_markdown, sections
from mlops_provider.core.model_card_record import (
    MAX_DECISIONS,
    add_decision,
    approval_of,
    card_config,
    card_path,
    clean,
    decision_record,
    jsonable,
    read_state,
    registry_description,
    safe_url,
    status,
)

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</td></tr></table><iframe src=//evil>",
    "[click](javascript:alert(1)) ![x](http://evil/x.png) <http://evil>",
    "| cell | break |\n# heading\n---",
    "\x00nul \x1b[31m ansi \u202eevil\u202c bidi",
    "lone \ud800 surrogate",
    "&lt;already&gt; &amp; entity",
]
HUGE = "y" * 2_000_000


def hostile_card(value: str) -> ModelCard:
    """A card with ``value`` in every field a config, the registry or the data can fill."""
    gate = {
        "gate": value,
        "metric": value,
        "value": float("nan"),
        "threshold": value,
        "passed": value,
        "detail": value,
    }
    return ModelCard(
        model_name=value,
        version=value,
        written_at=value,
        created_at=value,
        config={"description": value, "owners": [value], "limitations": [value]},
        tags={
            k: value for k in ("mlops.training_data_uri", "mlops.training_data_fingerprint", "mlops.dag_id")
        }
        | {
            "mlops.features": json.dumps([value, value]),
            "mlops.rollback.at": value,
            "mlops.rollback.reason": value,
        },
        metrics={value: value, "f1_macro": float("nan"), "rmse": float("inf")},
        slices={"column": value, "slices": {value: {"rows": value, "metrics": {value: value}}}},
        importance={
            "features": [{"feature": value, "importance_mean": value, "importance_std": float("-inf")}]
        },
        decisions=[
            {
                "decision": value,
                "reason": value,
                "decided_by": value,
                "decided_at": value,
                "gates": [gate, {**gate, "gate": "robustness", value: value}],
                "metrics": {"challenger": {value: value}, "champion": {value: float("nan")}},
                "approval": {"by": value, "at": value, "answer": value, "comment": value},
                value: value,
            }
        ],
        history=[{k: value for k in ("when", "alias", "action", "from", "to", "who", "why")}],
        aliases=[value],
        links={value: value, "MLflow": "javascript:alert(1)"},
    )


def visible_text(page: str) -> str:
    """The page with its markup removed and entities decoded: what a reader sees."""
    import html

    return html.unescape(re.sub(r"<[^>]*>", "", page))


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_every_hostile_value_is_text_in_the_html(value: str) -> None:
    page = render_html(hostile_card(value))
    page.encode("utf-8")  # a lone surrogate never reaches the output
    tags = set(re.findall(r"<\s*([a-zA-Z0-9!]+)", page))
    assert tags <= {
        "!doctype",
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "h3",
        "section",
        "p",
        "dl",
        "dt",
        "dd",
        "ul",
        "li",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
    assert "<script" not in page.lower()
    assert "<iframe" not in page.lower()
    assert "<img" not in page.lower()
    for attribute in re.findall(r'\s([a-z-]+)="', page):  # only the renderer's own attributes
        assert attribute in {"lang", "charset", "http-equiv", "content", "name", "class", "href", "rel"}
    assert re.findall(r'href="([^"]*)"', page) == []  # no hostile link: dropped, not escaped
    assert "\x00" not in page
    assert "\u202e" not in page
    assert "\x1b" not in page
    if value.isprintable() and "\ud800" not in value and "\u202e" not in value:
        assert value in visible_text(page)  # shown as written


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_every_hostile_value_is_text_in_the_markdown(value: str) -> None:
    text = render_markdown(hostile_card(value))
    text.encode("utf-8")
    unescaped = re.sub(r"\\.", "", text)  # what is left once every escaped character is removed
    for syntax in ("<", ">", "[", "]", "(", ")", "`", "*", "_", "|", "&", "!"):
        # only the renderer's own syntax: headings, bold labels, table pipes and link brackets
        allowed = {"|", "*", "(", ")"}
        if syntax not in allowed:
            assert syntax not in unescaped, (syntax, value)
    for line in text.splitlines():
        if line.startswith("|"):  # a table row: every cell's pipe escaped, the row on one line
            assert line.endswith("|")
    assert not re.search(r"(?<!\\)\]\(", text.replace("](<http", ""))  # no link but the renderer's own
    assert "\x00" not in text
    assert "\u202e" not in text


def test_markdown_table_rows_keep_their_shape_whatever_the_cells() -> None:
    text = render_markdown(hostile_card("| a | b |\nnew | line"))
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
            assert len(widths) == 1, block[:300]


def test_huge_values_are_clipped_and_the_page_stays_small() -> None:
    card = hostile_card(HUGE)
    card.decisions = [dict(card.decisions[0], gates=[card.decisions[0]["gates"][0]] * 5000)]
    card.metrics = {f"m{i}": i for i in range(10_000)}
    page, text = render_html(card), render_markdown(card)
    assert len(page) < 1_000_000
    assert len(text) < 1_000_000
    assert "…" in page
    assert page.count("<tr>") < 500


def test_non_finite_and_missing_numbers_are_named() -> None:
    card = ModelCard(
        "m", "1", "t", metrics={"f1_macro": float("nan"), "rmse": float("inf"), "mae": None, "r2": 10**400}
    )
    page = render_html(card)
    assert page.count("not finite") == 3  # NaN, inf and an int no float can hold
    assert "<td>—</td>" in page  # missing
    assert "nan" not in visible_text(page).lower().replace("not finite", "")


def test_the_page_is_self_contained() -> None:
    page = render_html(hostile_card("http://evil.example/x.css"))
    head = page.split("<body>")[0]
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert "src=" not in page
    assert "script-src" not in head
    assert "default-src 'none'" in head
    assert re.findall(r'href="([^"]*)"', page) == ["http://evil.example/x.css"]  # only safe http(s) links


def test_gate_results_are_drawn_generically_robustness_included() -> None:
    robustness = {
        "gate": "robustness",
        "metric": "f1_macro",
        "value": 0.07,
        "threshold": 0.05,
        "passed": False,
        "detail": "f1_macro drops 0.07 on a noisy holdout",
        "noise": 0.1,
        "missing_rate": 0.05,
    }
    decision = {
        "decision": "refused",
        "reason": "gate(s) failed: robustness f1_macro",
        "decided_at": "2026-01-02T00:00:00Z",
        "gates": [
            {"gate": "threshold_min", "metric": "f1_macro", "value": 0.8, "threshold": 0.6, "passed": True},
            robustness,
        ],
        "metrics": {"challenger": {"f1_macro": 0.8}, "champion": {"f1_macro": 0.75}},
        "forced_by": "alice",
        "something_new": {"k": [1, 2]},
    }
    card = ModelCard("m", "2", "2026-01-02T00:00:01Z", decisions=[decision])
    titled = dict(sections(card))
    robust = titled["Robustness"][0]
    assert robust[0] == "table"
    (row,) = robust[2]
    assert row[:5] == ["robustness", "f1_macro", "0.07", "0.05", "✗ fail"]
    assert "noise=0.1" in row[6]
    assert "missing_rate=0.05" in row[6]
    page = render_html(card)
    assert "threshold_min" in page
    assert "0.8" in page
    assert "0.75" in page
    assert "0.05" in page
    assert "something_new" in page
    assert "forced_by" in page
    assert 'class="fail"' in page
    assert 'class="pass"' in page


def test_no_robustness_gate_says_so() -> None:
    assert "No robustness check recorded" in render_markdown(ModelCard("m", "1", "t"))


@pytest.mark.parametrize(
    ("decisions", "moves", "expected"),
    [
        ([], [], "Registered: no decision yet."),
        ([{"decision": "pending", "at": "T1", "alias": "champion"}], [], "Pending approval"),
        ([{"decision": "promoted", "at": "T1", "alias": "champion"}], [], "Promoted to @champion."),
        ([{"decision": "shadow", "at": "T1"}], [], "Promoted in shadow as @challenger"),
        ([{"decision": "refused", "at": "T1", "reason": "f1 too low"}], [], "Refused: f1 too low"),
        (
            [
                {"decision": "pending", "at": "T1"},
                {
                    "decision": "promoted",
                    "at": "T1",
                    "alias": "prod",
                    "approval": {"by": "alice", "answer": "Approve"},
                },
            ],
            [],
            "Approved by alice and promoted to @prod.",
        ),
        (
            [
                {"decision": "pending", "at": "T1"},
                {
                    "decision": "refused",
                    "at": "T2",
                    "reason": "r",
                    "approval": {"by": "bob", "answer": "Reject"},
                },
            ],
            [],
            "Refused (Reject by bob): r",
        ),
        (
            [{"decision": "promoted", "at": "T1"}, {"decision": "skipped", "at": "T3", "reason": "already"}],
            [],
            "Promoted to @champion.",
        ),
        (
            [{"decision": "promoted", "at": "T1"}],
            [{"when": "T2", "alias": "champion", "action": "promote", "from": "1", "to": "2"}],
            "Replaced as @champion by version 2.",
        ),
        (
            [{"decision": "promoted", "at": "T1"}],
            [{"when": "T2", "alias": "champion", "action": "rollback", "from": "1", "to": "0"}],
            "Rolled back: @champion moved back to version 0.",
        ),
        (
            [{"decision": "promoted", "at": "T0"}],
            [
                {"when": "T1", "alias": "champion", "action": "promote", "from": "1", "to": "2"},
                {"when": "T2", "alias": "champion", "action": "rollback", "from": "2", "to": "1"},
            ],
            "Restored as @champion by a rollback (from version 2).",
        ),
        (
            [{"decision": "promoted", "at": "T1", "alias": "champion"}],
            [{"when": "T1", "alias": "champion", "action": "promote", "from": None, "to": "1"}],
            "Promoted to @champion.",  # the move and its decision in one second: the decision
        ),
        (  # a fast run: promoted, then replaced and rolled back within the same second
            [{"decision": "promoted", "at": "T1"}],
            [
                {"when": "T1", "alias": "champion", "action": "promote", "from": None, "to": "1"},
                {"when": "T1", "alias": "champion", "action": "promote", "from": "1", "to": "2"},
            ],
            "Replaced as @champion by version 2.",
        ),
        (
            [{"decision": "promoted", "at": "T1"}],
            [
                {"when": "T1", "alias": "champion", "action": "promote", "from": "0", "to": "1"},
                {"when": "T1", "alias": "champion", "action": "rollback", "from": "1", "to": "0"},
            ],
            "Rolled back: @champion moved back to version 0.",
        ),
        (
            [{"decision": "promoted", "at": "T0"}],
            [
                {"when": "T0", "alias": "champion", "action": "promote", "from": None, "to": "1"},
                {"when": "T1", "alias": "champion", "action": "promote", "from": "1", "to": "2"},
                {"when": "T1", "alias": "champion", "action": "rollback", "from": "2", "to": "1"},
            ],
            "Restored as @champion by a rollback (from version 2).",  # moves in one second: record order
        ),
        (
            [{"decision": "refused", "at": "T1", "reason": "r"}],
            [{"when": "T1", "alias": "champion", "action": "rollback", "from": "2", "to": "1"}],
            "Restored as @champion by a rollback (from version 2).",  # a refusal moves nothing
        ),
    ],
)
def test_status_follows_the_latest_event(decisions: list, moves: list, expected: str) -> None:
    assert status("1", decisions, moves).startswith(expected)


def test_card_config_refuses_bad_types_naming_the_key_and_clips_long_text() -> None:
    for raw, key in (
        ("a description", "model_card must be a mapping"),
        ({"description": 42}, "model_card.description"),
        ({"owners": "alice"}, "model_card.owners"),
        ({"owners": ["a", 1]}, "model_card.owners"),
        ({"limitations": {"a": 1}}, "model_card.limitations"),
        ({"owner": ["a"]}, "unknown key"),
    ):
        with pytest.raises(InvalidInputError, match=key):
            card_config(raw)
    clipped = card_config({"description": HUGE, "owners": ["x"] * 500 + [" "], "limitations": [HUGE]})
    assert len(clipped["description"]) == 4000
    assert len(clipped["owners"]) == 50
    assert len(clipped["limitations"][0]) == 1000
    assert card_config(None) == {"description": None, "owners": [], "limitations": []}
    assert card_config({"description": "  ", "owners": [" ", "bob"]}) == {
        "description": None,
        "owners": ["bob"],
        "limitations": [],
    }


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "text",
        [],
        {"config": "x", "decisions": "y"},
        {"config": {"owners": 5}, "decisions": [1, None, "x"]},
    ],
)
def test_a_tampered_card_record_is_read_leniently(raw: Any) -> None:
    state = read_state(raw)
    assert state["decisions"] == []
    assert state["config"] == {"description": None, "owners": [], "limitations": []}


def test_decisions_are_bounded_and_a_retry_replaces_the_same_decision() -> None:
    state = read_state(None)
    summary = {
        "decision": "refused",
        "reason": "low",
        "new_version": "3",
        "alias": "champion",
        "decided_by": "gate",
    }
    add_decision(state, decision_record(summary, "T1"))
    add_decision(state, decision_record(summary, "T2"))  # the same decision written again
    assert [d["at"] for d in state["decisions"]] == ["T2"]
    for i in range(MAX_DECISIONS + 5):
        add_decision(state, decision_record({**summary, "reason": f"r{i}"}, f"T{i}"))
    assert len(state["decisions"]) == MAX_DECISIONS
    assert state["decisions"][-1]["reason"] == f"r{MAX_DECISIONS + 4}"


def test_decision_records_are_json_safe_and_bounded() -> None:
    record = decision_record(
        {
            "gates": [{"value": float("nan")}] * 500,
            "reason": HUGE,
            "n": 10**400,
            "deep": [[[[["x"]]]]],
            "obj": object(),
        },
        "T",
    )
    json.dumps(record, allow_nan=False)
    assert len(record["gates"]) == 100
    assert record["gates"][0]["value"] is None
    assert len(record["reason"]) == 4000
    assert record["n"] is None
    assert jsonable(float("inf")) is None
    assert jsonable(True) is True


def test_approval_of_reads_the_human_in_the_loop_event() -> None:
    event = {
        "chosen_options": ["Approve"],
        "responded_by_user": {"id": "7", "name": "alice"},
        "responded_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        "params_input": {"comment": "<b>fine</b>"},
    }
    assert approval_of(event) == {
        "by": "alice",
        "at": "2026-03-01T09:30:00+00:00",
        "answer": "Approve",
        "comment": "<b>fine</b>",
    }
    assert approval_of({"chosen_options": ["Approve"], "timedout": True})["answer"] == "timed out"
    assert approval_of({"responded_by_user": "bob", "chosen_options": "x", "params_input": [1]}) == {
        "by": "bob",
        "at": None,
        "answer": "no answer",
        "comment": None,
    }
    for bad in (None, "event", 3, ["Approve"]):
        assert approval_of(bad) is None


def test_registry_description_is_escaped_bounded_and_names_the_champion_card() -> None:
    text = registry_description("[x](javascript:alert(1)) <b>" + "<" * 10_000, "m<1>", "3", "abc123`x", None)
    assert len(text) <= 4900
    assert "\\<b\\>" in text
    assert "\\[x\\]\\(javascript" in text
    assert text.endswith("Model card: `runs:/abc123x/model_card/model_card.md` (MLflow artifact).")
    assert "Champion: version 3** of m\\<1\\>" in text
    linked = registry_description(
        None, "m", "3", "abc", "https://airflow.example/mlops/cards/m/3/model_card.html"
    )
    assert linked.startswith("**Champion")
    assert "in Airflow: <https://airflow.example/mlops/cards/" in linked
    assert "in Airflow" not in registry_description(None, "m", "3", "abc", "javascript:alert(1)")
    assert "no training run recorded" in registry_description("", "m", "3", None, None)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://mlflow.example/#/models/m/versions/3", True),
        ("http://127.0.0.1:5000/#/experiments/1/runs/abc", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ('http://x/" onmouseover="alert(1)', False),
        ("http://x/a b", False),
        ("http://x/)](javascript:alert(1)", False),
        ("//evil.example", False),
        (None, False),
        ("http://" + "x" * 3000, False),
    ],
)
def test_only_plain_http_links(url: Any, ok: bool) -> None:
    assert safe_url(url) is ok


def test_card_path_encodes_every_part() -> None:
    assert card_path("a/b <c>", "3") == "/mlops/cards/a%2Fb%20%3Cc%3E/3/model_card.html"
    assert card_path("../x", "1") == "/mlops/cards/..%2Fx/1/model_card.html"


def test_clean_drops_controls_and_bidi_and_replaces_surrogates() -> None:
    assert clean("a\x00b\u202ec\nd\te\ud800") == "abc\nd\te?"
    assert clean("x" * 10, 5) == "xxxx…"
