"""Hostile column names and values never become markup in the pages the plugin serves.

Both reports are rendered for real (Great Expectations' outcome, Evidently 0.7's HTML) with a payload
that would close a ``<script>`` block and open its own, and parsed as a browser tokenises them (the
stdlib parser ends a script only at ``</script``, as browsers do). A headless Chromium run of the same
pages found no injected element either (see the README's reports section).
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

PAYLOAD = "</script><script>window.PWNED=1</script><img src=x onerror=alert(1)><!--<script>"
MARKER = "window.PWNED=1"


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [(tag, k) for k, _ in attrs if k.startswith("on")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def parse(html: bytes) -> Elements:
    parser = Elements()
    parser.feed(html.decode("utf-8"))
    return parser


def test_validation_report_escapes_every_value() -> None:
    from mlops_provider.core.validation import FailedExpectation, ValidationOutcome
    from mlops_provider.core.validation_report import PAGE_CSP, render_html

    failure = FailedExpectation(
        type=PAYLOAD,
        column=PAYLOAD,
        unexpected_count=3,
        unexpected_values=[PAYLOAD, 1],
        error=None,
        observed_value=PAYLOAD,
    )
    broken = FailedExpectation(
        type="expect_column_to_exist",
        column=PAYLOAD,
        unexpected_count=None,
        unexpected_values=[],
        error=PAYLOAD,
    )
    outcome = ValidationOutcome(
        success=False,
        suite_name=PAYLOAD,
        rows=5,
        columns=[PAYLOAD, "x"],
        evaluated=2,
        failed=[failure, broken],
        result={},
        error=PAYLOAD,
        gx_version=PAYLOAD,
        started_at=PAYLOAD,
        details=[
            {"success": False, "failure": failure, "kwargs": {"column": PAYLOAD}},
            {"success": False, "failure": broken, "kwargs": {"column": PAYLOAD}},
        ],
    )
    html = render_html(outcome, data_uri=PAYLOAD, source=PAYLOAD, title=PAYLOAD)
    page = parse(html)
    assert "script" not in page.tags
    assert "img" not in page.tags
    assert page.handlers == []
    assert html.count(b"&lt;/script&gt;") >= 10  # shown as text
    assert f'content="{PAGE_CSP}"'.encode() in html


@pytest.fixture(scope="module")
def drift_reports() -> tuple[bytes, bytes]:
    """A real Evidently report of hostile data, and one of the same shape with harmless names."""
    import numpy as np
    import pandas as pd

    from mlops_provider.core.drift import compute_drift
    from mlops_provider.hooks.evidently import EvidentlyHook

    def render(bad: str) -> bytes:
        rng = np.random.default_rng(0)
        n = 300
        ref = pd.DataFrame({bad: rng.normal(0, 1, n), "weather": rng.choice(["sun", bad], n)})
        cur = pd.DataFrame({bad: rng.normal(1, 1, n), "weather": rng.choice(["sun", bad, "rain"], n)})
        cur["label"] = pd.Series(rng.choice(["a", bad], n), dtype="category")
        ref["label"] = pd.Series(rng.choice(["a", bad], n), dtype="category")
        result = compute_drift(ref, cur, drift_share=0.3, min_rows=50)
        rendered = EvidentlyHook().drift_report(
            ref, cur, result, model_name="m" + bad, reference_uri="ref" + bad, current_uri="cur" + bad
        )
        assert rendered is not None
        return rendered.html

    return render(PAYLOAD), render("harmless-name")


@pytest.mark.slow
def test_drift_report_keeps_hostile_text_inside_its_scripts(drift_reports: tuple[bytes, bytes]) -> None:
    hostile, benign = (parse(html) for html in drift_reports)
    assert hostile.tags.count("script") == benign.tags.count("script")  # no script element added
    assert "img" not in hostile.tags
    assert hostile.handlers == []
    assert not any(text.strip().startswith(MARKER) for text in hostile.script_text)
    assert MARKER in "".join(hostile.script_text)  # the data is there, as data
    banner = drift_reports[0].split(b"mlops-drift-decision", 1)[1].split(b"</div>", 1)[0]
    assert b"<script" not in banner
    assert b"&lt;/script&gt;" in banner
