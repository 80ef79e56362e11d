"""Services and tasks as plain functions and through eager Celery chords: stored results
come from the engine, whatever the chunking of the simulation and of its recommendation check;
cancelling, redelivery and deleted runs."""

from __future__ import annotations

import pytest

from tests.scenarios.factories import make_scenario, make_site_with_twins
from twins.scenarios import const, jobs
from twins.scenarios.models import ScenarioChunk, ScenarioRun
from twins.scenarios.progress import CancelFlag, ChunkProgress
from twins.scenarios.services import ScenarioServiceError, cancel_run, start_run
from twins.sim import chunk_bounds, compare, run, scenario_from_dict
from web.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(planner):
    site, assets = make_site_with_twins(3, members=[planner])
    return make_scenario(site, assets, planner, replications=120, seed=11)


@pytest.fixture
def eager_celery():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def test_it_stores_the_engines_result_through_an_eager_chord(scenario, planner, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        started = start_run(scenario.id, planner, chunks=3)
    stored = ScenarioRun.objects.get(id=started.id)
    assert stored.state == "done" and stored.error == ""
    # both phases ran as chords: 3 chunks of each variant's simulation, then 3 of its check
    # beside its merge
    assert stored.chunks.filter(phase="simulate").count() == 6 and stored.chunks.filter(phase="check").count() == 6
    assert stored.chunks.filter(phase="merge").count() == 2
    assert not stored.chunks.filter(finished_at__isnull=True).exists()
    assert not stored.chunks.filter(data__isnull=False).exists()  # arrays dropped once merged
    assert set(stored.check_plans) == {"scenario", "baseline"}
    # The same engine scenarios run in one process give the same figures.
    direct = {variant: run(scenario_from_dict(spec)) for variant, spec in stored.specs.items()}
    assert stored.results == direct
    assert stored.comparison == compare(direct["baseline"], [direct["scenario"]])


def run_phases(run_id: int) -> dict:
    """Both phases as the workers run them, each phase's chunks in reverse order (as two
    workers may finish them): the simulation; the plan; the check and the merges; the end."""
    for phase, job in (("simulate", jobs.simulate_chunk), ("check", jobs.check_chunk), ("merge", jobs.merge_chunk)):
        if phase == "check":
            assert jobs.plan_checks(run_id)["status"] == "planned"
        for chunk_id in ScenarioChunk.objects.filter(run_id=run_id, phase=phase).order_by("-start", "variant").values_list("id", flat=True):
            assert job(chunk_id)["status"] == "done"
    return jobs.finish_run(run_id)


def test_it_gives_identical_results_with_one_chunk_and_with_two(scenario):
    results = []
    for chunks in (1, 2):
        started = start_run(scenario.id, chunks=chunks, dispatch=False)
        assert ScenarioChunk.objects.filter(run=started, variant=const.VARIANT_SCENARIO, phase="simulate").count() == chunks
        assert run_phases(started.id)["status"] == "done"
        results.append(ScenarioRun.objects.get(id=started.id).results)
    assert results[0] == results[1]
    assert results[0]["scenario"]["replications"] == 120


def test_the_check_phase_gives_the_engines_figures_whatever_its_chunking(scenario):
    # The recommendation check split over 1, 3 and 4 chunks (100 replications each variant;
    # 7 chunks of the simulation give 4 of the check, each of at least 25 replications) stores
    # what the engine gives with the whole check in one process.
    direct = None
    for chunks, check_chunks in ((1, 1), (3, 3), (7, 4)):
        started = start_run(scenario.id, chunks=chunks, dispatch=False)
        checks = ScenarioChunk.objects.filter(run=started, variant=const.VARIANT_SCENARIO, phase="check")
        assert [(c.start, c.stop) for c in checks.order_by("start")] == chunk_bounds(100, check_chunks)
        assert started.check_total == 200
        assert run_phases(started.id)["status"] == "done"
        stored = ScenarioRun.objects.get(id=started.id)
        if direct is None:
            direct = {variant: run(scenario_from_dict(spec)) for variant, spec in stored.specs.items()}
            assert any(a["recommendation"]["simulated"]["cost_per_hour"] for a in direct["scenario"]["assets"])
        assert stored.results == direct
        assert stored.check_plans["scenario"]["replications"] == 100


def test_it_fails_a_check_chunk_run_before_its_plan(scenario):
    started = start_run(scenario.id, chunks=1, dispatch=False)
    check = started.chunks.get(variant=const.VARIANT_SCENARIO, phase="check")
    assert jobs.check_chunk(check.id)["status"] == "failed"
    failed = ScenarioRun.objects.get(id=started.id)
    assert failed.state == "failed" and "check has no plan" in failed.error


def test_it_is_idempotent_for_redelivered_tasks(scenario):
    started = start_run(scenario.id, chunks=2, dispatch=False)
    chunk = ScenarioChunk.objects.filter(run=started, phase="simulate").first()
    assert jobs.simulate_chunk(chunk.id)["status"] == "done"
    assert jobs.simulate_chunk(chunk.id)["status"] == "already done"
    for other in ScenarioChunk.objects.filter(run=started, phase="simulate").exclude(id=chunk.id):
        jobs.simulate_chunk(other.id)
    assert jobs.plan_checks(started.id)["status"] == "planned"
    plans = ScenarioRun.objects.get(id=started.id).check_plans
    assert jobs.plan_checks(started.id)["status"] == "planned"  # the same plans again
    assert ScenarioRun.objects.get(id=started.id).check_plans == plans
    check = ScenarioChunk.objects.filter(run=started, phase="check").first()
    assert jobs.check_chunk(check.id)["status"] == "done"
    assert jobs.check_chunk(check.id)["status"] == "already done"
    merged = ScenarioChunk.objects.filter(run=started, phase="merge").first()
    assert jobs.merge_chunk(merged.id)["status"] == "done"
    assert jobs.merge_chunk(merged.id)["status"] == "already done"
    assert jobs.run_all_chunks(started.id)["status"] == "done"
    first = ScenarioRun.objects.get(id=started.id)
    assert jobs.finish_run(started.id)["status"] == "done"  # already stored: nothing changes
    assert ScenarioRun.objects.get(id=started.id).finished_at == first.finished_at


def test_it_exits_cleanly_when_the_run_is_gone(scenario):
    started = start_run(scenario.id, dispatch=False)
    chunk_id = started.chunks.first().id
    started.delete()
    assert jobs.simulate_chunk(chunk_id) == {"chunk": chunk_id, "status": "gone"}
    assert jobs.check_chunk(chunk_id) == {"chunk": chunk_id, "status": "gone"}
    assert jobs.merge_chunk(chunk_id) == {"chunk": chunk_id, "status": "gone"}
    assert jobs.plan_checks(started.id) == {"run": started.id, "status": "gone"}
    assert jobs.finish_run(started.id) == {"run": started.id, "status": "gone"}


def test_it_stops_a_chunk_once_the_run_is_cancelled(scenario, planner):
    scenario.params["replications"] = 2000
    scenario.save()
    started = start_run(scenario.id, chunks=1, dispatch=False)
    chunk = started.chunks.get(variant=const.VARIANT_SCENARIO, phase="simulate")
    seen = []

    class CancelMidway(ChunkProgress):
        def __call__(self, done, total):
            seen.append(done)
            if done >= 100 and ScenarioRun.objects.get(id=started.id).is_active:
                cancel_run(started.id, planner)

    flag = CancelFlag(started.id, interval_s=0.0)
    from twins.sim import SimulationCancelled, run_chunk

    with pytest.raises(SimulationCancelled) as stopped:
        run_chunk(started.specs["scenario"], chunk.start, chunk.stop, progress=CancelMidway(started.id, chunk.id, interval_s=0.0), should_stop=flag)
    assert stopped.value.done < 2000 and flag.reads >= 1
    # The task path: a cancelled run's chunks return without simulating, the merge stores nothing.
    assert jobs.simulate_chunk(chunk.id)["status"] == "cancelled"
    assert jobs.plan_checks(started.id)["status"] == "cancelled"
    assert jobs.check_chunk(started.chunks.get(variant=const.VARIANT_SCENARIO, phase="check").id)["status"] == "cancelled"
    assert jobs.merge_chunk(started.chunks.get(variant=const.VARIANT_SCENARIO, phase="merge").id)["status"] == "cancelled"
    assert jobs.finish_run(started.id)["status"] == "cancelled"
    final = ScenarioRun.objects.get(id=started.id)
    assert final.state == "cancelled" and final.results is None
    with pytest.raises(ScenarioServiceError, match="cancelled already"):
        cancel_run(started.id, planner)


def test_it_reads_the_cancel_flag_at_most_every_interval(scenario):
    started = start_run(scenario.id, dispatch=False)
    now = [0.0]
    flag = CancelFlag(started.id, interval_s=0.5, clock=lambda: now[0])
    for step in range(100):  # 100 polls over 2 s
        now[0] = step * 0.02
        assert flag() is False
    assert flag.reads == 3
    ScenarioRun.objects.filter(id=started.id).update(state="cancelled")
    now[0] = 2.6
    assert flag() is True


def test_it_marks_the_run_failed_when_a_stored_scenario_is_invalid(scenario):
    started = start_run(scenario.id, dispatch=False)
    specs = started.specs
    specs["scenario"]["load_factor"] = 99
    ScenarioRun.objects.filter(id=started.id).update(specs=specs)
    chunk = started.chunks.get(variant="scenario", index=0, phase="simulate")
    assert jobs.simulate_chunk(chunk.id)["status"] == "failed"
    failed = ScenarioRun.objects.get(id=started.id)
    assert failed.state == "failed" and "load_factor" in failed.error


def test_it_throttles_progress_writes_but_always_reports_the_end(scenario):
    started = start_run(scenario.id, chunks=1, dispatch=False)
    chunk = started.chunks.get(variant=const.VARIANT_SCENARIO, phase="simulate")
    now = [0.0]
    progress = ChunkProgress(started.id, chunk.id, interval_s=0.5, clock=lambda: now[0])
    published = []
    progress.publish = published.append  # count the writes; what one write does is tested above
    for done in range(1, 101):  # 100 calls over 2 s
        now[0] = done * 0.02
        progress(done, 120)
    progress(120, 120)
    assert published[0] == 1 and published[-1] == 120
    assert len(published) <= 2 / 0.5 + 2


def test_it_costs_three_queries_per_progress_report(scenario, django_assert_num_queries):
    started = start_run(scenario.id, chunks=2, dispatch=False)
    chunk = started.chunks.first()
    progress = ChunkProgress(started.id, chunk.id)
    with django_assert_num_queries(3):  # store the chunk's count, read the run, sum the chunks
        progress.publish(40)
    assert ScenarioChunk.objects.get(id=chunk.id).done == 40
