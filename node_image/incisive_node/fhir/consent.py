"""A consent decision as a FHIR R4 Consent (research scope): permit or deny one purpose for
one grantee over a period. A superseded decision is `inactive`, the one in force `active`."""

from __future__ import annotations

from typing import Any

from incisive_node.consent import ConsentRecord
from incisive_node.consent.model import ACTIVE, ANY_GRANTEE, PERMIT
from incisive_node.fhir.imaging import PSEUDED

PURPOSE_SYSTEM = "urn:incisive:consent-purpose"
GRANTEE_SYSTEM = "urn:incisive:grantee"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def consent(record: ConsentRecord) -> dict[str, Any]:
    provision: dict[str, Any] = {
        "type": record.decision,
        "purpose": [
            {"system": PURPOSE_SYSTEM, "code": record.purpose},
            {"system": ACT_REASON, "code": "HRESCH", "display": "healthcare research"},
        ],
    }
    period = {k: v for k, v in (("start", record.start), ("end", record.end)) if v}
    if period:
        provision["period"] = period
    if record.grantee != ANY_GRANTEE:
        provision["actor"] = [{
            "role": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "IRCP", "display": "information recipient",
            }]},
            "reference": {"identifier": {"system": GRANTEE_SYSTEM, "value": record.grantee}},
        }]
    opt = ("OPTIN", "opt-in") if record.decision == PERMIT else ("OPTOUT", "opt-out")
    return {
        "resourceType": "Consent",
        "id": record.consent_id,
        "meta": {"security": [PSEUDED]},
        "status": "active" if record.status == ACTIVE else "inactive",
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "research", "display": "Research",
        }]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{record.patient}"},
        "dateTime": record.recorded_at,
        "policyRule": {"coding": [{"system": ACT_CODE, "code": opt[0], "display": opt[1]}]},
        "provision": provision,
    }
