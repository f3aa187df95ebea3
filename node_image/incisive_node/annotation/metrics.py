"""Prometheus metrics for annotation, read from the records at each scrape, so they are
right after a restart and across replicas sharing one index. Labels are the task and the
review outcome, from fixed vocabularies: nothing from the data.

    incisive_annotation_proposals_total{task}                proposals made
    incisive_annotation_reviews_total{task,outcome}          accepted / corrected / rejected
    incisive_annotation_queue_length{task}                   proposals waiting for review
    incisive_annotation_accepted_unchanged_ratio{task}       accepted / reviewed (no sample
                                                             before the first review)
    incisive_annotation_reviewer_actions_saved_total{task}   accepted-unchanged proposals:
                                                             each is one series a reviewer
                                                             did not have to label by hand
    incisive_annotation_instances_labelled_total{task,outcome}
                                                             training labels (instances) made
                                                             by accepting or by correcting
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from incisive_node.annotation.records import (
    ACCEPTED,
    CORRECTED,
    PENDING,
    REVIEWED,
    AnnotationRecords,
)
from incisive_node.fl.config import TASKS


class AnnotationCollector(Collector):
    def __init__(self, records: AnnotationRecords) -> None:
        self.records = records

    def collect(self) -> Iterator[Metric]:
        counts = self.records.counts()
        proposals = CounterMetricFamily(
            "incisive_annotation_proposals", "Proposals made, by task", labels=["task"])
        reviews = CounterMetricFamily(
            "incisive_annotation_reviews", "Proposals reviewed, by task and outcome",
            labels=["task", "outcome"])
        queue = GaugeMetricFamily(
            "incisive_annotation_queue_length", "Proposals waiting for review",
            labels=["task"])
        ratio = GaugeMetricFamily(
            "incisive_annotation_accepted_unchanged_ratio",
            "Fraction of reviewed proposals accepted unchanged", labels=["task"])
        saved = CounterMetricFamily(
            "incisive_annotation_reviewer_actions_saved",
            "Accepted-unchanged proposals: series labelled without manual annotation",
            labels=["task"])
        labelled = CounterMetricFamily(
            "incisive_annotation_instances_labelled",
            "Instances given a training label, by how", labels=["task", "outcome"])
        for task in TASKS:
            made = sum(n for (t, _), (n, _) in counts.items() if t == task)
            proposals.add_metric([task], made)
            queue.add_metric([task], counts.get((task, PENDING), (0, 0))[0])
            for outcome in REVIEWED:
                reviews.add_metric([task, outcome], counts.get((task, outcome), (0, 0))[0])
            reviewed = sum(counts.get((task, o), (0, 0))[0] for o in REVIEWED)
            accepted, accepted_instances = counts.get((task, ACCEPTED), (0, 0))
            if reviewed:
                ratio.add_metric([task], accepted / reviewed)
            saved.add_metric([task], accepted)
            labelled.add_metric([task, ACCEPTED], accepted_instances)
            labelled.add_metric([task, CORRECTED], counts.get((task, CORRECTED), (0, 0))[1])
        yield from (proposals, reviews, queue, ratio, saved, labelled)
