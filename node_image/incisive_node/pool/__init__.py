"""Central pooling for HPC: the hub's pool (an appliance store plus a small mutual-TLS API)
holds de-identified copies that patients donated for central processing (`central-hpc`);
each site's sync pass pushes newly consented copies and sends withdrawals as tombstones, on
which the pool deletes that patient's copies. See docs/pool.md."""
