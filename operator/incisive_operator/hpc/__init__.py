"""HPC-as-a-service: HPCWorkloads on the consortium's central GPU cluster.

Domain modules, each about one thing: `jobs` (workload -> batch/v1 Job), `quota` (the
built-in per-tenant GPU admission), `kueue` (reading Kueue's Workload when Kueue admits),
`slurm` (slurmrestd), `metering` (GPU-hours and cost), `datasets` (the donation check),
`lineage` (what ran on what), `outcome` (backend state -> our conditions), `settings`.
The kopf wiring is in `handlers/hpcworkload.py`.
"""
