"""ML-assisted annotation at the site: a federated model, verified by hash, proposes labels
and lesion masks for new studies; reviewers accept, correct or reject them; what they
settle becomes training labels. See docs/annotation.md.

    model_ref.py     the model by reference, refused unless its SHA-256 is the expected one
    sources.py       a stored series as the model sees it (pixels in slice order)
    inference.py     probabilities, labels, masks, confidence and uncertainty
    seg.py           DICOM SEG (highdicom) out, and masks back from an uploaded SEG
    observations.py  the FHIR Observation carrying a proposal's confidence
    records.py       proposals and training labels in the store's index
    service.py       pre-annotation of series without a proposal from this model
    review.py        accept / correct / reject, atomically, into training labels
    labels.py        the reviewed labels as the training data loader's hooks
    review_api.py    the review API (HTTP) and its loopback server
    metrics.py       Prometheus metrics read from the records
    cli.py           `incisive-node annotate ...`

Import the modules themselves: this package imports nothing, so the CLI loads torch and
highdicom only for the commands that need them.
"""
