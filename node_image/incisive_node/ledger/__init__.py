"""The federation's tamper-evident ledger: an RFC 9162 Merkle log with witnessed checkpoints.

Modules: `merkle` (hashing, tree, proofs), `note` and `cosignature` (C2SP signed notes),
`checkpoint`, `entries` (the no-PHI leaf schema), `store` and `postgres` (SQLite, memory,
PostgreSQL), `log`, `witness`, `policy` (k-of-n), `server` and `client` (HTTP), `trust` and
`audit` (what the CLI runs), `service` and `cli` (`incisive-node ledger serve|witness|keygen`),
`recorder`, `settings` and `events` (how the product appends its events).
"""
