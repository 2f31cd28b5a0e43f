"""Prometheus metrics kept in plain dicts (one event loop updates them) and rendered as the text format."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

# Seconds: the scoring target is single-digit milliseconds, timeouts are seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)

Labels = tuple[str, ...]
M = TypeVar("M", bound="_Metric")


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Labels = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, label_names

    def _labels(self, values: Labels, extra: str = "") -> str:
        pairs = [f'{n}="{_escape(v)}"' for n, v in zip(self.label_names, values, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> str:
        return "\n".join([f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}", *self.samples()])


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Labels = ()) -> None:
        super().__init__(name, help_text, label_names)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def samples(self) -> list[str]:
        return [f"{self.name}{self._labels(k)} {_number(v)}" for k, v in sorted(self.values.items())]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, label_names: Labels = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, label_names)
        self.buckets = buckets
        self.series: dict[Labels, list[float]] = {}  # per label set: one count per bucket (+Inf last), then sum

    def observe(self, value: float, labels: Labels = ()) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        series[bisect_left(self.buckets, value)] += 1  # counts per bucket; made cumulative when rendered
        series[-1] += value

    def samples(self) -> list[str]:
        lines = []
        for labels, series in sorted(self.series.items()):
            running = 0.0
            for bound, count in zip((*self.buckets, float("inf")), series[:-1], strict=True):
                running += count
                edge = 'le="+Inf"' if bound == float("inf") else f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{self._labels(labels, edge)} {_number(running)}")
            lines.append(f"{self.name}_sum{self._labels(labels)} {series[-1]!r}")
            lines.append(f"{self.name}_count{self._labels(labels)} {_number(running)}")
        return lines


class Registry:
    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def add(self, metric: M) -> M:
        self.metrics.append(metric)
        return metric

    def render(self) -> bytes:
        return ("\n".join(m.render() for m in self.metrics) + "\n").encode()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServingMetrics:
    """The scoring server's metrics; `app` is read for readiness and model details when rendering."""

    REASONS: ClassVar[dict[int, str]] = {
        400: "bad_request", 404: "not_found", 405: "bad_method", 413: "too_large", 415: "bad_content_type",
        422: "invalid_input", 500: "internal", 503: "not_ready", 504: "timeout",
    }

    def __init__(self, app: Any) -> None:
        self.app = app
        self.in_flight = 0
        self.registry = registry = Registry()
        self.requests = registry.add(Counter("mlspec_requests_total", "HTTP requests by route and status.",
                                             ("route", "status")))
        self.latency = registry.add(Histogram("mlspec_request_duration_seconds", "Time to answer, by route.",
                                              ("route",)))
        self.errors = registry.add(Counter("mlspec_request_errors_total", "Requests answered with an error.",
                                           ("route", "reason")))
        registry.add(Gauge("mlspec_requests_in_flight", "Requests being answered now.", lambda: self.in_flight))
        registry.add(Gauge("mlspec_model_ready", "1 once the model is loaded and verified.",
                           lambda: 1 if app.model is not None else 0))
        registry.add(Gauge("mlspec_model_load_seconds", "How long resolving, verifying and loading took.",
                           lambda: app.model.load_seconds if app.model is not None else 0))
        self.info = registry.add(Counter("mlspec_model_info", "The model served (always 1).",
                                         ("deployment", "model", "version", "flavor")))
        self.batches = registry.add(Histogram("mlspec_predict_batch_requests", "Requests scored per model call.",
                                              buckets=SIZE_BUCKETS))
        self.rows = registry.add(Counter("mlspec_predict_rows_total", "Rows scored."))
        self.predict = registry.add(Histogram("mlspec_predict_duration_seconds", "Time inside the model per call."))

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.inc((route, str(status)))
        self.latency.observe(seconds, (route,))
        if status >= 400:
            self.errors.inc((route, self.REASONS.get(status, str(status))))

    def on_batch(self, stats: Any) -> None:
        self.batches.observe(stats.requests)
        self.rows.inc(amount=stats.rows)
        self.predict.observe(stats.seconds)

    def render(self) -> bytes:
        model = self.app.model
        if model is not None and not self.info.values:
            self.info.inc((self.app.settings.name, model.source.name, model.source.version or "", model.flavor))
        return self.registry.render()
