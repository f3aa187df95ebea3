"""The federation's tamper-evident ledger: an RFC 9162 Merkle log with witnessed checkpoints.

Modules: `merkle` (hashing, tree, proofs), `note` and `cosignature` (C2SP signed notes),
`checkpoint`, `entries` (the no-PHI leaf schema), `store`, `log`, `witness`, `policy`
(k-of-n), `server` and `client` (HTTP), `trust` and `audit` (what the CLI runs).
"""
