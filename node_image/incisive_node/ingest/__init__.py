"""Ingest: one pipeline (pipeline.py) behind three doors: a C-STORE SCP (scp.py), DICOMweb
STOW-RS (stow.py, served by http_server.py) and folder import (folder.py). See
docs/ingest.md."""
