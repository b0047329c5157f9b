"""A demo killed mid-run must not leave the next one waiting forever for a pool slot."""

from __future__ import annotations

import dagster as dg

from prompt_release_dagster.demo import DEMO_SESSION_TAG, reap_abandoned_runs


@dg.op
def _step() -> None:
    return None


@dg.job
def _writer() -> None:
    _step()


def _claimed(instance: dg.DagsterInstance, run_id: str) -> bool:
    return run_id in instance.event_log_storage.get_concurrency_info("warehouse").active_run_ids


def test_runs_a_killed_demo_left_are_failed_and_their_pool_slots_freed():
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        abandoned = instance.create_run_for_job(_writer, tags={DEMO_SESSION_TAG: "20261206T120000"})
        instance.handle_new_event(
            dg.EventLogEntry(  # the run had started when its process died
                error_info=None,
                level="DEBUG",
                user_message="",
                run_id=abandoned.run_id,
                timestamp=0.0,
                dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=abandoned.job_name),
            )
        )
        instance.event_log_storage.initialize_concurrency_limit_to_default("warehouse")  # as the executor does
        claim = instance.event_log_storage.claim_concurrency_slot("warehouse", abandoned.run_id, "_step")
        assert claim.slot_status.value == "CLAIMED"
        from_the_ui = instance.create_run_for_job(_writer)  # a run `make ui` launched: not the demo's
        instance.handle_new_event(
            dg.EventLogEntry(
                error_info=None,
                level="DEBUG",
                user_message="",
                run_id=from_the_ui.run_id,
                timestamp=0.0,
                dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=from_the_ui.job_name),
            )
        )
        assert instance.get_run_by_id(abandoned.run_id).status == dg.DagsterRunStatus.STARTED
        assert _claimed(instance, abandoned.run_id)

        assert reap_abandoned_runs(instance) == [abandoned.run_id]
        assert instance.get_run_by_id(abandoned.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not _claimed(instance, abandoned.run_id)
        assert instance.get_run_by_id(from_the_ui.run_id).status == dg.DagsterRunStatus.STARTED
        assert reap_abandoned_runs(instance) == []  # nothing left to reap
