"""Monitoring: alarms to an operations topic, and a dashboard."""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from hyperpod_guard.constants import NAMESPACE, Dimension, Metric, Service

from .config import Config

FIVE_MINUTES = Duration.minutes(5)


def _search(metric: Metric, dimensions: tuple[Dimension, ...], label: str, *, statistic: str = "Sum",
            period: Duration = FIVE_MINUTES, fill: bool = False) -> cloudwatch.MathExpression:
    """Every dimension value of an EMF metric, one line each (EMF dimensions are not known in advance: a new
    cluster appears without a redeploy). `fill`: a period without a value is 0 (FILL), not a gap that the
    line would bridge."""
    schema = ",".join((NAMESPACE, *dimensions))
    search = f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', '{statistic}', {int(period.to_seconds())})"
    return cloudwatch.MathExpression(
        expression=f"FILL({search}, 0)" if fill else search, label=label, period=period, using_metrics={},
    )


def _fleet_health(sweep_rate_minutes: int) -> list[list[cloudwatch.IWidget]]:
    """The "Fleet health" rows: the sweep's per-cluster gauges (service._emit_cluster_health), one line per
    cluster, each period's highest value (a period as long as the sweep interval holds one report of each
    cluster; Maximum, not Sum, should a cluster be evaluated twice in one, as a message delivered again is)."""
    period = Duration.minutes(max(FIVE_MINUTES.to_minutes(), sweep_rate_minutes))
    per_cluster = (Dimension.CLUSTER, Dimension.SERVICE)
    cluster = "${PROP('Dim.Cluster')}"  # a dynamic label: the cluster's name

    def graph(title: str, metric: Metric) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(title=title, width=6, left=[
            _search(metric, per_cluster, cluster, statistic="Maximum", period=period)])

    return [
        [cloudwatch.TextWidget(width=24, height=2, markdown=(
            f"## Fleet health\nPer cluster, from each sweep (every {sweep_rate_minutes} min; not from events). "
            "Open alerts: pending or firing. Unhealthy nodes: in Failure or with an open unhealthy-node alert. "
            "Capacity shortfall: the sum over groups of TargetCount - CurrentCount. "
            "Minutes since last event: since the newest HyperPod event applied (none: no line)."))],
        [graph("Open alerts", Metric.OPEN_ALERTS), graph("Unhealthy nodes", Metric.UNHEALTHY_NODES),
         graph("Capacity shortfall (nodes below target)", Metric.CAPACITY_SHORTFALL),
         graph("Minutes since last event", Metric.MINUTES_SINCE_LAST_EVENT)],
        # a series exists while a cluster has open alerts of that severity: a period without one is 0
        [cloudwatch.GraphWidget(title="Open alerts by cluster and severity", width=24, stacked=True, left=[
            _search(Metric.OPEN_ALERTS, (Dimension.CLUSTER, Dimension.SEVERITY, Dimension.SERVICE),
                    f"{cluster} ${{PROP('Dim.Severity')}}", statistic="Maximum", period=period, fill=True)])],
    ]


def _count(metric: Metric, service: Service) -> cloudwatch.Metric:
    """A function's count (Powertools adds the `service` dimension to every metric)."""
    return cloudwatch.Metric(namespace=NAMESPACE, metric_name=metric.value,
                             dimensions_map={Dimension.SERVICE.value: service.value}, statistic="Sum",
                             period=FIVE_MINUTES)


#: refused signatures in 5 minutes that alarm: a stale signing secret refuses every click (a person retries a
#: few times); a scanner that found the URL sends more. Either way someone should look (the logs say why)
SIGNATURES_REFUSED_THRESHOLD = 3


class Monitoring(Construct):
    def __init__(
        self, scope: Construct, id: str, *, config: Config, key: kms.IKey,
        functions: dict[str, lambda_.Function], queues: dict[str, sqs.Queue], sweep: lambda_.Function,
        work_queue: sqs.Queue, chatops: bool = False,
    ):
        super().__init__(scope, id)
        self.ops_topic = sns.Topic(
            self, "Operations", topic_name=f"{config.prefix}-operations", display_name="hyperpod-guard operations",
            master_key=key, enforce_ssl=True,
        )
        for address in config.ops_emails:
            self.ops_topic.add_subscription(subscriptions.EmailSubscription(address))
        notify = actions.SnsAction(self.ops_topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(id_: str, metric: cloudwatch.IMetric, description: str, *, threshold: float = 1,
                  comparison: cloudwatch.ComparisonOperator = (
                      cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD),
                  missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
                  periods: int = 1) -> None:
            created = cloudwatch.Alarm(
                self, id_, alarm_name=f"{config.prefix}-{id_}", alarm_description=description, metric=metric,
                threshold=threshold, evaluation_periods=periods, comparison_operator=comparison,
                treat_missing_data=missing,
            )
            created.add_alarm_action(notify)
            self.alarms.append(created)

        for name, function in functions.items():
            alarm(f"{name}-errors", function.metric_errors(period=FIVE_MINUTES), f"{function.function_name} failed")
            alarm(f"{name}-throttles", function.metric_throttles(period=FIVE_MINUTES),
                  f"{function.function_name} was throttled")
        for name, queue in queues.items():
            alarm(f"{name}-depth", queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES),
                  f"messages are waiting in {name}: events or alerts were not processed (see README: Operations)")
        # a cluster the worker could not evaluate (its message comes back; after maxReceiveCount it waits in
        # the work-dlq, alarmed above); the worker answers such a batch, so its Lambda errors do not show it
        alarm("sweep-cluster-errors", _count(Metric.SWEEP_ERRORS, Service.SWEEP),
              "the sweep could not evaluate a cluster (see the worker's or the sweep's logs)")
        # the sweep heals lost events; if it stops, nobody notices otherwise
        window = max(FIVE_MINUTES.to_minutes(), config.sweep_rate_minutes * 3)
        alarm("sweep-not-running", sweep.metric_invocations(period=Duration.minutes(window)),
              f"the sweep has not run for {window} minutes", threshold=1,
              comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
              missing=cloudwatch.TreatMissingData.BREACHING)

        if chatops:
            self._chatops(alarm)

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}")
        for row in _fleet_health(config.sweep_rate_minutes):
            self.dashboard.add_widgets(*row)
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="HyperPod events by detail-type", width=12, left=[
                _search(Metric.EVENTS, (Dimension.DETAIL_TYPE, Dimension.SERVICE), "events")]),
            cloudwatch.GraphWidget(title="Findings by policy and severity", width=12, left=[
                _search(Metric.FINDINGS, (Dimension.POLICY, Dimension.SEVERITY, Dimension.SERVICE), "findings")]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Notifications", width=12, left=[
                _count(Metric.NOTIFICATIONS, Service.EVALUATOR), _count(Metric.NOTIFICATIONS, Service.SWEEP),
                _count(Metric.SLACK_MESSAGES_SENT, Service.SLACK_NOTIFIER),
                _count(Metric.SUPPRESSED_ALERTS, Service.EVALUATOR),
            ]),
            cloudwatch.GraphWidget(title="Errors", width=12, left=[
                *(f.metric_errors(period=FIVE_MINUTES, label=f"{n} errors") for n, f in functions.items()),
                _count(Metric.INVALID_EVENTS, Service.EVALUATOR), _count(Metric.RULES_ERRORS, Service.EVALUATOR),
                _count(Metric.SLACK_DELIVERY_FAILED, Service.SLACK_NOTIFIER),
            ]),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Sweep: clusters handed over and evaluated", width=12, left=[
                _count(Metric.SWEEP_ENQUEUED, Service.SWEEP), _count(Metric.SWEEP_EVALUATED, Service.SWEEP),
                _count(Metric.SWEEP_ERRORS, Service.SWEEP),
            ]),
            cloudwatch.GraphWidget(title="Work queue", width=12, left=[
                work_queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, label="waiting"),
            ], right=[
                work_queue.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum",
                                                                   label="oldest (s)"),
            ]),
        )
        if chatops:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(title="Slack clicks: the endpoint", width=12, left=[
                    _count(Metric.CHATOPS_CLICKS, Service.SLACK_INTERACTIVITY),
                    _count(Metric.CHATOPS_SIGNATURES_REFUSED, Service.SLACK_INTERACTIVITY),
                    _count(Metric.CHATOPS_MALFORMED, Service.SLACK_INTERACTIVITY),
                ]),
                cloudwatch.GraphWidget(title="Slack clicks: carried out", width=12, left=[
                    _count(Metric.CHATOPS_DONE, Service.SLACK_ACTIONS),
                    _count(Metric.CHATOPS_REFUSED, Service.SLACK_ACTIONS),
                    _count(Metric.CHATOPS_FAILED, Service.SLACK_ACTIONS),
                ]),
            )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Durations (p95)", width=24, left=[
                f.metric_duration(period=FIVE_MINUTES, statistic="p95", label=n) for n, f in functions.items()
            ]),
        )

    @staticmethod
    def _chatops(alarm: Callable[..., None]) -> None:
        """Slack app mode: the endpoint's errors and throttles and the actions' dead-letter queue are alarmed
        with the other functions and queues; here, the requests refused for their signature."""
        alarm("slack-signatures-refused", _count(Metric.CHATOPS_SIGNATURES_REFUSED, Service.SLACK_INTERACTIVITY),
              "requests to the Slack interactivity endpoint were refused for their signature: the signing secret "
              "is not the app's, or someone else calls the URL (see the endpoint's logs)",
              threshold=SIGNATURES_REFUSED_THRESHOLD)
