"""The dashboard's charts, drawn by plotext with real axes: loss (train and val) and the learning-rate schedule."""

from __future__ import annotations

import math

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from gptwiz.runs.snapshot import downsample
from gptwiz.wizard.run_quality import RunPrediction


def _finite(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _int_ticks(low: float, high: float, n: int = 5) -> tuple[list[float], list[str]]:
    """Whole-number iteration ticks (plotext's own would read 25.8)."""
    low_i, high_i = int(low), int(round(high))
    if high_i <= low_i:
        return [float(low_i)], [str(low_i)]
    step = max(1, round((high_i - low_i) / (n - 1)))
    ticks = list(range(low_i, high_i + 1, step))
    if ticks[-1] != high_i:
        if high_i - ticks[-1] < step / 2:
            ticks[-1] = high_i
        else:
            ticks.append(high_i)
    return [float(t) for t in ticks], [f"{t:,}" for t in ticks]


def nice_step(span: float, n: int = 5) -> float:
    """A tick step of 1, 2, 2.5 or 5 times a power of ten that cuts `span` into about `n - 1` parts."""
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / max(1, n - 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)


def _next_step(step: float) -> float:
    """The round step after `step` in the series 1, 2, 2.5, 5, 10, 20, ..."""
    power = 10 ** math.floor(math.log10(step) + 1e-9)
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power > step * 1.0001)


def even_ticks(low: float, high: float, n: int = 5) -> tuple[list[float], list[str], float, float]:
    """At most `n` evenly spaced y ticks on round values covering low..high, their labels (as many decimals as
    the step needs), and the axis limits (the outer ticks), so that the lines run between labelled values.
    Never more ticks than `n`: two on one row of the chart would leave which label shows to chance."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [], [], low, high
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    n = max(2, n)
    step = nice_step(high - low, n)
    while True:
        first = math.floor(low / step + 1e-9) * step
        last = math.ceil(high / step - 1e-9) * step
        count = int(round((last - first) / step)) + 1
        if count <= n:
            break
        step = _next_step(step)
    ticks = [first + i * step for i in range(count)]
    decimals = next(d for d in range(10) if abs(round(step, d) - step) <= 1e-9 * step or d == 9)
    return ticks, [f"{t:.{decimals}f}" for t in ticks], first, last


def ema(values: list[float], alpha: float) -> list[float]:
    """The exponential moving average the loss chart smooths with: each point `alpha` of the new value."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


# How much of each new value the smoothed train loss takes: about the last 20 iterations' weight.
EMA_ALPHA = 0.1


def predicted_range(real: list[float], pred: RunPrediction | None) -> tuple[float, float]:
    """The loss axis's range: the real losses' and the predicted band's, never the predicted curve's (whose
    start, from the model's idea of random weights, could squash the real curve)."""
    if pred is None:
        return min(real), max(real)
    return min(min(real), pred.quality.low), max(max(real), pred.quality.high)


def predicted_curve(pred: RunPrediction, low: float, high: float) -> tuple[list[float], list[float]]:
    """The predicted curve's points inside the loss axis's range low..high (its early part, above the real
    losses, is left out rather than stretching the axis)."""
    pairs = [(x, y) for x, y in zip(pred.curve_x, pred.curve_y) if low <= y <= high]
    return [p[0] for p in pairs], [p[1] for p in pairs]


class _SizedPlot(PlotextPlot):
    """A plot whose ticks are chosen for its size: drawn again whenever it is rendered at a size other than the
    one it was drawn for (a Resize can arrive after the render at the new size)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._drawn_for: tuple[int, int] | None = None

    def _draw(self) -> None:
        raise NotImplementedError

    def redraw(self) -> None:
        self._drawn_for = (self.size.width, self.size.height)
        self._draw()
        self.refresh()

    def render(self) -> RenderResult:
        if self._drawn_for != (self.size.width, self.size.height):
            self._drawn_for = (self.size.width, self.size.height)
            self._draw()
        return super().render()


class LossChart(_SizedPlot):
    """Train loss per iteration (raw, or smoothed by an EMA) and the evaluations' val loss, against iterations;
    with a prediction, its curve (dim, dashed) to the run's end and its 80% band there (a bar, ┬ to ┴).
    The legend is in the title, above the plot, so that it never covers the first iterations' points."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._series: tuple[list[float], ...] = ([], [], [], [])
        self.predicted: RunPrediction | None = None
        self.smoothing = False

    def set_smoothing(self, on: bool) -> None:
        self.smoothing = on
        self.redraw()

    def set_data(self, train_x: list[float], train_y: list[float], val_x: list[float], val_y: list[float],
                 predicted: RunPrediction | None = None) -> None:
        self._series = (train_x, train_y, val_x, val_y)
        self.predicted = predicted
        self.redraw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("iteration")
        train_x, train_y, val_x, val_y = self._series
        width = max(20, self.size.width)
        fx, fy = _finite(train_x, train_y)
        vx, vy = _finite(val_x, val_y)
        if not fx and not vx:
            plt.title("loss: no iterations yet")
            return
        smooth = self.smoothing and len(fy) > 1
        pred = self.predicted
        title = ["loss:", "train (EMA)" if smooth else "train", "━"] + (["val ●"] if vx else []) + \
            (["predicted ┄"] if pred else [])
        plt.title(" ".join(title))
        y_low, y_high = predicted_range(fy + vy, pred)
        if pred:  # first: the run's own losses are drawn over it
            self._draw_prediction(pred, y_low, y_high)
        if fx:
            tx, ty = downsample(fx, fy, max_points=2 * width)
            if smooth:
                plt.plot(tx, ty, marker="braille", color="gray")  # the raw loss, faint, behind its average
                sx, sy = downsample(fx, ema(fy, EMA_ALPHA), max_points=2 * width)
                plt.plot(sx, sy, marker="braille", color="cyan")
            else:
                plt.plot(tx, ty, marker="braille", color="cyan")
        if vx:
            plt.plot(vx, vy, marker="braille", color="orange")
            plt.scatter(vx, vy, marker="●", color="orange")
        xs = fx + vx + ([float(pred.max_iters)] if pred else [])
        plt.xticks(*_int_ticks(min(xs), max(xs)))
        # the plot's own rows: the height less the title, the frame's two lines, the x ticks and their label
        rows = self.size.height - 5
        ticks, labels, low, high = even_ticks(y_low, y_high, n=max(2, min(6, rows)))
        if ticks:
            plt.ylim(low, high)
            plt.yticks(ticks, labels)

    def _draw_prediction(self, pred: RunPrediction, low: float, high: float) -> None:
        """The predicted curve, dim and dashed, and the band at the run's end over the curve's last point."""
        px, py = predicted_curve(pred, low, high)
        if px:
            self.plt.plot(px, py, marker="┄", color="gray")
        at, band_low, band_high = pred.band
        self.plt.plot([at, at], [band_low, band_high], marker="│", color="gray")
        self.plt.scatter([at], [band_high], marker="┬", color="gray")
        self.plt.scatter([at], [band_low], marker="┴", color="gray")


class LrChart(_SizedPlot):
    """The whole schedule (warmup, cosine decay) with a marker at the current iteration."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._curve: tuple[list[float], list[float]] = ([], [])
        self._now: tuple[float, float] | None = None

    def set_data(self, curve: tuple[list[float], list[float]], now: tuple[float, float] | None) -> None:
        self._curve, self._now = curve, now
        self.redraw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        xs, ys = self._curve
        wide = self.size.width >= 36
        label = "learning rate" if wide else "lr"
        plt.title(f"{label} {self._now[1]:.2e}" if self._now else label)
        if not xs:
            return
        plt.plot(xs, ys, marker="braille", color="green")
        low, high = min(ys), max(ys)
        ticks = [low, (low + high) / 2, high] if high > low else [high]
        plt.yticks(ticks, [f"{v:.0e}" for v in ticks])
        if self._now is not None:
            plt.scatter([self._now[0]], [self._now[1]], marker="●", color="red")
