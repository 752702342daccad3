"""High availability end to end: two operator processes, one Lease, one kmock API server.

Exactly one operator acts (one child per attempt, no second create, no 409 on a child);
when the leader is SIGKILLed the standby takes the Lease once it expires and creates the
next child within 30 s of the kill; a clean stop releases the Lease at once. The
operators run with short timings (8 s lease, 6 s renew deadline, 1 s retry), so a
takeover is due about 9 s after the kill (17 s with the defaults), then kopf starts.

Not proven here (the emulator cannot): clock skew between nodes (both processes share
this clock), a leader that is partitioned from the API server but still running (the
unit tests drive the renew deadline), and PATCH-vs-PUT conflicts (the emulator keeps
``resourceVersion`` on PATCH; the Lease is only created and PUT, and its PUTs are
checked against ``resourceVersion`` like the API server does).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.test_operator_e2e import tiny_evolution
from tests.helpers.operator_harness import JobController, OperatorProcess, wait_for

FAILOVER_LIMIT = 30.0  # seconds from the leader's death to the next child (the HA requirement)
SHORT_LEASE = {"SEAS_LEADER_LEASE_SECONDS": "8", "SEAS_LEADER_RENEW_SECONDS": "6", "SEAS_LEADER_RETRY_SECONDS": "1"}


def child_names(emulator) -> Counter:
    return Counter(c["metadata"]["name"] for c in emulator.children())


def started(emulator) -> Counter:
    """StageStarted events per child: one per child when only one operator acts."""
    return Counter(re.search(r"created \w+ (\S+)", e["message"]).group(1) for e in emulator.events() if e.get("reason") == "StageStarted")


def test_one_operator_acts_and_the_standby_takes_over_within_30s(emulator, tmp_path):
    ops = [OperatorProcess(emulator, tmp_path, SHORT_LEASE, name="op-a"), OperatorProcess(emulator, tmp_path, SHORT_LEASE, name="op-b")]
    try:
        with ThreadPoolExecutor(2) as pool:  # start both at once: they race for the Lease
            list(pool.map(lambda op: op.start(), ops))
        leader = wait_for(lambda: next((op for op in ops if op.leads()), None), 30, "one operator to take the Lease")
        standby = next(op for op in ops if op is not leader)
        assert standby.alive() and not standby.leads()
        wait_for(lambda: "waiting for leadership of lease default/seas-operator held by " + leader.name in standby.log(), 15,
                 "the standby to say who leads")
        assert "standby" in standby.metrics() and "seas_" not in standby.metrics(), "a standby exports no status metrics"

        # Failures are injected without running anything: every attempt of the stage fails until the test stops.
        emulator.create_evolution(tiny_evolution(tmp_path, "ha", tmp_path, retries=3))
        controller = JobController(emulator, tmp_path, fail={"ha-r0-evaluate": 10})
        controller.hold = lambda child: True  # keep the first attempt running until the leader is dead
        wait_for(lambda: child_names(emulator), 60, "the first child")
        time.sleep(3)  # three reconcile intervals: room for a wrongly active standby to create a duplicate
        assert child_names(emulator) == Counter({"ha-r0-evaluate": 1})
        stats = emulator.stats()
        assert stats["creates"].get("jobs") == 1 and not stats["conflicts"].get("jobs"), stats
        assert leader.leads() and not standby.leads()
        transitions = emulator.lease()["spec"]["leaseTransitions"]

        leader.kill()
        killed = time.monotonic()
        controller.hold = None
        assert controller.step() == 1  # the attempt fails now: only the new leader can start the next one
        wait_for(lambda: "ha-r0-evaluate-retry1" in child_names(emulator), FAILOVER_LIMIT, "the standby to create the next child")
        failover = time.monotonic() - killed
        print(f"failover: next child {failover:.1f}s after the leader's SIGKILL")
        assert failover < FAILOVER_LIMIT
        assert standby.leads(), standby.log()
        assert emulator.lease()["spec"]["leaseTransitions"] == transitions + 1

        time.sleep(1.5)  # let the stats catch up
        assert child_names(emulator) == Counter({"ha-r0-evaluate": 1, "ha-r0-evaluate-retry1": 1})
        assert set(started(emulator).values()) == {1}, started(emulator)
        stats = emulator.stats()
        assert stats["creates"].get("jobs") == 2 and not stats["conflicts"].get("jobs"), stats
        assert "lost leadership" not in standby.log()

        # A clean stop (SIGTERM) releases the Lease, so the next standby need not wait for it to expire.
        standby.stop()
        assert standby.proc.returncode == 0, standby.log()
        assert emulator.lease_holder() == "", standby.log()
        assert "released lease default/seas-operator" in standby.log()
    finally:
        for op in ops:
            op.stop()
