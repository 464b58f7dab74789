"""How `make test` spreads the tests over its xdist workers (tests/conftest.py)."""

from __future__ import annotations

from conftest import xdist_group


def test_every_e2e_test_is_one_unit_so_the_topology_starts_once():
    assert {
        xdist_group("tests/e2e/test_faults.py::test_mlflow_server_restarted_mid_run"),
        xdist_group("tests/e2e/test_scale.py::test_two_workers_share_the_mapped_scoring"),
        xdist_group("tests/e2e/test_topology.py::test_retrain_triggered_through_rest"),
    } == {"tests/e2e/"}


def test_each_bench_smoke_chunk_is_its_own_unit():
    loop = "tests/unit/test_bench_smoke.py::test_the_benchmarks_run_at_smoke_sizes[loop]"
    scoring = "tests/unit/test_bench_smoke.py::test_the_benchmarks_run_at_smoke_sizes[scoring]"
    assert xdist_group(loop) == loop
    assert xdist_group(scoring) == scoring


def test_other_tests_go_by_file():
    a = xdist_group("tests/integration/test_models_http.py::test_alice_sees_only_the_models[x]")
    b = xdist_group("tests/integration/test_models_http.py::TestPage::test_b")
    assert a == b == "tests/integration/test_models_http.py"
    assert (
        xdist_group("tests/unit/core/test_paths.py::test_round_trip[a::b]") == "tests/unit/core/test_paths.py"
    )
