"""The dashboard's charts, drawn by plotext with real axes: loss (train and val) and the learning-rate schedule."""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from gptwiz.runs.monitor import downsample


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


class LossChart(PlotextPlot):
    """Train loss per iteration and the evaluations' val (and train) loss, against iterations."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._series: tuple[list[float], ...] = ([], [], [], [])

    def set_data(self, train_x: list[float], train_y: list[float], val_x: list[float], val_y: list[float]) -> None:
        self._series = (train_x, train_y, val_x, val_y)
        self._draw()
        self.refresh()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("loss")
        plt.xlabel("iteration")
        train_x, train_y, val_x, val_y = self._series
        width = max(20, self.size.width)
        tx, ty = downsample(*_finite(train_x, train_y), max_points=2 * width)
        vx, vy = _finite(val_x, val_y)
        if not tx and not vx:
            plt.title("loss: no iterations yet")
            return
        if tx:
            plt.plot(tx, ty, label="train", marker="braille", color="cyan")
        if vx:
            plt.plot(vx, vy, label="val", marker="braille", color="orange")
            plt.scatter(vx, vy, marker="●", color="orange")
        xs = tx + vx
        plt.xticks(*_int_ticks(min(xs), max(xs)))


class LrChart(PlotextPlot):
    """The whole schedule (warmup, cosine decay) with a marker at the current iteration."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._curve: tuple[list[float], list[float]] = ([], [])
        self._now: tuple[float, float] | None = None

    def set_data(self, curve: tuple[list[float], list[float]], now: tuple[float, float] | None) -> None:
        self._curve, self._now = curve, now
        self._draw()
        self.refresh()

    def on_resize(self) -> None:
        self._draw()

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
