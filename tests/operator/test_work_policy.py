"""A site's decision on offered work follows only its own policy."""

from __future__ import annotations

from incisive_operator.api.v1alpha1.datanode import Policy
from incisive_operator.hub import fanout
from incisive_operator.site import work

ITEM = {"metadata": {"name": "research.lung"}, "spec": {"purpose": "federated-training"}}


def test_purpose_outside_policy_is_declined_with_the_allowed_list() -> None:
    decision = work.decide(Policy(allowed_purposes=["central-hpc"]), ITEM, set())
    assert (decision.decision, decision.reason) == ("Declined", "PurposeNotAllowed")
    assert "central-hpc" in decision.message


def test_manual_approval_waits_for_a_local_approver() -> None:
    policy = Policy(allowed_purposes=["federated-training"], work_approval="Manual")
    waiting = work.decide(policy, ITEM, set())
    assert (waiting.decision, waiting.reason) == ("Pending", "AwaitingLocalApproval")
    assert "research.lung" in waiting.message
    assert work.decide(policy, ITEM, {"research.lung"}).decision == "Accepted"


def test_automatic_approval_accepts_allowed_purposes() -> None:
    policy = Policy(allowed_purposes=["federated-training"], work_approval="Automatic")
    assert work.decide(policy, ITEM, set()).reason == "PolicyAccepted"


def test_approved_names_come_from_the_datanode_annotation() -> None:
    node = {"metadata": {"annotations": {work.APPROVED_WORK_ANNOTATION: "a.b, c.d ,"}}}
    assert work.approved_names(node) == {"a.b", "c.d"}


def test_label_selection_and_readiness() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    sites = [
        {"metadata": {"name": "b", "labels": {"country": "IT", "tier": "1"}}, **ready},
        {"metadata": {"name": "a", "labels": {"country": "ES"}}, **ready},
        {"metadata": {"name": "c", "labels": {"country": "IT"}},
         "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
    ]
    assert fanout.select_sites(sites, {}) == ["a", "b"]
    assert fanout.select_sites(sites, {"matchLabels": {"country": "IT"}}) == ["b"]
    expressions = {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}
    assert fanout.select_sites(sites, expressions) == ["a"]
    not_in = {"matchExpressions": [{"key": "country", "operator": "NotIn", "values": ["IT"]}]}
    assert fanout.select_sites(sites, not_in) == ["a"]
