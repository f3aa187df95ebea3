"""Federation identity: the hub's CA and mTLS (X.509 everywhere), and eIDAS validation.

* ``ca``, ``csr``, ``renewal``, ``mtls``: short-lived certificates for sites and hub
  services, issued from CSRs so keys never leave where they were made.
* ``eidas`` with ``signatures``, ``trusted_list``, ``qualified``, ``organization_id``:
  whether an enrolment or an access request was signed with a qualified seal or signature
  under a service granted in an ETSI TS 119 612 trusted list at the signing time;
  ``trusted_list_signature``: whether that list was signed by its pinned scheme operator.

See docs/identity.md.
"""
