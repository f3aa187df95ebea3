"""Hub mode: the site registry, enrolment approvals and work fan-out."""
