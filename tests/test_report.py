"""`gptwiz report`: real PNG, SVG and HTML files of crafted run folders, legends from the runs' differing
settings, a run still being written, and the terminal comparison."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from crafted_runs import config, write_run
from tui_support import async_test

from gptwiz.cli import main
from gptwiz.report.build import load
from gptwiz.report.differences import compare
from gptwiz.report.series import ema, load_run
from gptwiz.runs.lock import RunLock
from gptwiz.runs.paths import RunPaths

pytest.importorskip("matplotlib")

LRS = (("lr3", 3e-4), ("lr9", 9e-4), ("lr20", 2e-3))


def _image(path: Path):
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    return pixels


def _assert_real_picture(path: Path, min_w: int = 1000, min_h: int = 600) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = _image(path)
    h, w = pixels.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    rgb = pixels[:, :, :3]
    not_white = (rgb < 0.95).any(axis=2).mean()
    assert 0.02 < not_white < 0.6, f"{not_white:.1%} of the pixels are drawn"  # lines, text, not a blank or a blot
    colored = ((rgb.max(axis=2) - rgb.min(axis=2)) > 0.3).mean()
    assert colored > 0.002, "no coloured curve drawn"


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


@pytest.fixture
def three_runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for i, (name, lr) in enumerate(LRS):
        write_run(runs, name, lr=lr, seed=i)
    return runs


def test_one_run_png_is_a_real_picture_with_its_panels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "solo", lr=6e-4)
    (runs / "solo" / "probe.json").write_text(json.dumps({"losses": [10.9 - i * 0.05 for i in range(40)]}))
    out = tmp_path / "solo.png"
    assert main(["report", "solo", "--runs_dir", str(runs), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    _assert_real_picture(out)

    from gptwiz.report.figure import Style, draw

    report = load(["solo"], runs)
    fig = draw(report.runs, report.comparison, Style())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss against iterations", "loss against tokens seen", "learning rate", "throughput",
                      "model FLOPs utilisation", "peak memory"]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    assert "probe (40 iters)" in _legend_texts(fig) and "val loss" in _legend_texts(fig)
    header = fig._suptitle.get_text()
    for part in ("solo", "preset tiny", "lr 6e-4", "data tinyshakespeare.txt", "state finished", "best val loss"):
        assert part in header, header


def test_three_runs_compared_with_labels_from_what_differs(three_runs: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "three.png"
    names = [n for n, _ in LRS]
    assert main(["report", *names, "--runs_dir", str(three_runs), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: 3 runs, differing in 1 setting: lr\n"
    _assert_real_picture(out)

    from gptwiz.report.figure import Style, draw

    report = load(names, three_runs)
    assert report.comparison.labels == names  # shorter than "lr 3e-4", ...: the table says what differs
    assert report.comparison.differing == [("lr", ["3e-4", "9e-4", "2e-3"])]
    assert "preset tiny" in report.comparison.shared and "batch 4" in report.comparison.shared
    fig = draw(report.runs, report.comparison, Style())
    assert _legend_texts(fig) == names  # one legend for both panels
    assert [ax.get_xlabel() for ax in fig.axes[:2]] == ["tokens seen", "tokens seen"]
    cells = {c.get_text().get_text() for ax in fig.axes for t in ax.tables for c in t.get_celld().values()}
    assert {"lr3", "lr9", "lr20", "best val", "lr", "9e-4"} <= cells


def test_html_is_one_file_with_the_figure_inside_and_no_address(three_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    assert main(["report", "lr3", "lr9", "--runs_dir", str(three_runs), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.html", "runs"]  # nothing beside it
    text = out.read_text(encoding="utf-8")
    assert "://" not in text and "http" not in text.replace("base64,", "").split("data:image")[0]
    assert not re.search(r"""(src|href)=["'](?!data:)""", text), "a resource outside the file"
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text).group(1))
    picture = tmp_path / "embedded.png"
    picture.write_bytes(png)
    _assert_real_picture(picture)
    assert "<td>3e-4</td>" in text.replace(' class="text"', "") and "lr9" in text
    assert "<caption>settings that differ</caption><thead><tr><th>run</th><th>lr</th>" in text


def test_svg_is_written(three_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.svg"
    assert main(["report", "lr3", "lr20", "--runs_dir", str(three_runs), "--out", str(out), "--log_y"]) == 0
    text = out.read_text(encoding="utf-8")
    assert "<svg" in text and "lr20" in text and "2e-3" in text


def test_a_run_still_being_written_is_reported(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    cut = '{"type":"train","iter":31,"loss":5.1,"lr":0.0003,"tokens_per'  # the trainer mid-write
    folder = write_run(runs, "live", state="running", upto=30, tail=cut)
    lock = RunLock(RunPaths(folder))
    lock.acquire()  # a trainer at work holds the run's lock
    try:
        run = load_run(RunPaths(folder))
        assert run.state == "running"
        assert run.train_loss.xs == [float(i) for i in range(1, 31)]
        assert run.val_loss.xs == [0.0, 10.0, 20.0, 30.0]
        assert run.iter == 30 and run.max_iters == 60
        out = tmp_path / "live.png"
        assert main(["report", "live", "--runs_dir", str(runs), "--out", str(out)]) == 0
        _assert_real_picture(out)
    finally:
        lock.release()


def test_a_run_with_no_records_yet_is_drawn_empty(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    folder = write_run(runs, "fresh", upto=0)
    (folder / "metrics.jsonl").write_text("")
    out = tmp_path / "fresh.png"
    assert main(["report", "fresh", "--runs_dir", str(runs), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


def test_terminal_comparison_without_out(three_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "lr3", "lr9", "lr20", "--runs_dir", str(three_runs)]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert "tokens seen" in out and "loss: lines train" in out
    for value in ("3e-4", "9e-4", "2e-3"):
        assert value in out
    headers = [line.split() for line in out.splitlines() if line.startswith("run ")]
    assert headers[0] == ["run", "lr"] and headers[1][:3] == ["run", "state", "iters"]
    assert "gptwiz report lr3 lr9 lr20" in out and "--out report.png" in out


@pytest.mark.parametrize("argv, fragment", [
    (["--out", "x.pdf"], "must end in .png, .svg, .html"),
    (["--smooth", "1"], "invalid --smooth 1"),
    (["--out", "no/such/folder/x.png"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(three_runs: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                          fragment: str) -> None:
    assert main(["report", "lr3", "--runs_dir", str(three_runs), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1, err


def test_an_unknown_run_names_the_existing_ones(three_runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nope", "--runs_dir", str(three_runs)]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and "lr3" in err


def test_labels_name_every_differing_setting_and_fall_back_to_names() -> None:
    names = ["first-attempt-at-it", "second-attempt-at-it"]
    a, b = config(names[0], batch=4, lr=1e-3), config(names[1], batch=8, lr=1.2e-3)
    assert compare(names, [a, b]).labels == ["lr 0.001, batch 4", "lr 0.0012, batch 8"]
    assert compare(names, [config("a"), config("b")]).labels == names  # nothing differs
    assert compare(["a"], [a]).labels == ["a"]
    c = config("c", block=128)
    labels = compare(names, [config("a"), c]).labels
    assert labels == ["block 64", "block 128"]  # tokens_per_iter differs too, but is no setting


def test_ema_is_tensorboards_debiased_smoothing() -> None:
    assert ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    smoothed = ema([4.0, 4.0, 4.0], 0.9)
    assert smoothed == pytest.approx([4.0, 4.0, 4.0])  # debiased: a constant stays itself from the first point
    assert ema([0.0, 10.0], 0.5) == pytest.approx([0.0, 10.0 * 0.5 / 0.75])


def test_the_command_offered_for_selected_runs_reports_them(three_runs: Path, tmp_path: Path) -> None:
    from gptwiz.report.build import command

    assert command(["lr3", "lr9"]) == "gptwiz report lr3 lr9 --out compare.png"
    line = command(["lr3", "lr9"], three_runs, str(tmp_path / "c.html"))
    argv = __import__("shlex").split(line)[1:]
    assert main(argv) == 0 and (tmp_path / "c.html").stat().st_size > 10_000


def test_runs_of_different_batches_compare_by_tokens(tmp_path: Path) -> None:
    from gptwiz.report.figure import Style, draw

    runs = tmp_path / "runs"
    write_run(runs, "b4", batch=4, max_iters=40)
    write_run(runs, "b8", batch=8, max_iters=20)
    report = load(["b4", "b8"], runs)
    assert report.comparison.differing == [("batch", ["4", "8"]), ("iters", ["40", "20"])]
    fig = draw(report.runs, report.comparison, Style(smooth=0))
    train_ax = fig.axes[0]
    ends = [line.get_xdata()[-1] for line in train_ax.lines]
    assert ends == [40 * 4 * 64, 20 * 8 * 64]  # the same tokens seen at the end: the curves end together


def test_a_probe_folder_is_reported_as_a_probe(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    folder = write_run(runs, "try", upto=20)
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    probe = [dict(r, type="probe") for r in lines if r["type"] == "train"]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in probe))
    run = load_run(RunPaths(folder))
    assert run.is_probe and run.train_loss.xs == [float(i) for i in range(1, 21)] and not len(run.val_loss)
    out = tmp_path / "try.png"
    assert main(["report", "try", "--runs_dir", str(runs), "--out", str(out)]) == 0
    _assert_real_picture(out)


@async_test
async def test_the_welcome_screen_compares_the_marked_runs(tmp_path: Path) -> None:
    from tui_support import quiet_context, screen_text, wait_for

    from gptwiz.tui.app import GptwizApp

    runs = tmp_path / "runs"
    for name, lr in (("lr3", 3e-4), ("lr9", 9e-4), ("other", 2e-3)):
        write_run(runs, name, lr=lr)
    app = GptwizApp(quiet_context(runs))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "loaded", False) and len(app.screen.rows) == 3)
        screen = app.screen
        order = [r.name for r in screen.rows]
        await pilot.press("space", "down", "space")  # mark the first two listed
        await wait_for(pilot, lambda: screen.compared() == order[:2])
        await wait_for(pilot, lambda: f"✓ {order[0]}" in screen_text(app))
        await pilot.press("c")
        page = runs / "compare.html"
        await wait_for(pilot, lambda: page.exists(), timeout=60)
        html = page.read_text()
        assert "://" not in html and "data:image/png;base64," in html
        assert "2 runs compared" in html and f">{order[0]}<" in html and f">{order[2]}<" not in html


# --- readable comparisons: short labels, legends and tables that fit ----------------------------------------------

EIGHT = ("baseline-a", "muon-short-warmup-b")


def _edit_config(folder: Path, edit) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


def _eight_apart(runs: Path, names: tuple[str, ...] = EIGHT) -> list[str]:
    """Runs that differ in eight settings (lr, batch, block, optim, dropout, warmup, iters, dtype); the others
    like the first, with other learning rates and iterations."""
    write_run(runs, names[0], lr=6e-4, batch=8, block=64, max_iters=40)
    folder = write_run(runs, names[1], lr=1e-3, batch=4, block=128, max_iters=50, seed=1)

    def apart(cfg: dict) -> None:
        cfg["model"]["dropout"], cfg["dtype"] = 0.0, "bfloat16"
        cfg["train"].update(optimizer="muon", warmup_iters=10)

    _edit_config(folder, apart)
    for i, name in enumerate(names[2:]):
        write_run(runs, name, lr=6e-4 * (i + 2), batch=8, block=64, max_iters=40 + 10 * i, seed=i + 2)
    return list(names)


def test_labels_come_from_the_differences_only_and_name_no_path() -> None:
    names = [f"an-experiment-with-data-and-weights-of-its-own-{n}" for n in ("one", "two")]
    a, b = config(names[0], lr=3e-4), config(names[1], lr=9e-4)
    a["data"]["input_file"], b["data"]["input_file"] = "/home/me/a/text.txt", "/home/me/b/text.txt"
    a["init_from"], b["init_from"] = "/home/me/gptwiz/runs/base", "/home/me/gptwiz/runs/base-long"
    comparison = compare(names, [a, b])
    assert comparison.labels == ["lr 3e-4, data a/text.txt, init base", "lr 9e-4, data b/text.txt, init base-long"]
    # The same data is no difference, named by its file alone among what the runs share.
    b["data"]["input_file"] = a["data"]["input_file"]
    same_data = compare(names, [a, b])
    assert same_data.labels == ["lr 3e-4, init base", "lr 9e-4, init base-long"]
    assert "data text.txt" in same_data.shared
    texts = [t for c in (comparison, same_data) for _, values in c.differing for t in values]
    for text in [*comparison.labels, *same_data.labels, *same_data.shared, *texts]:
        assert "/home" not in text and not re.search(r"(^|[\s,])/", text), text


def test_a_run_is_labelled_by_name_where_the_name_is_shorter(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    names = _eight_apart(runs)
    comparison = load(names, runs).comparison
    assert comparison.labels == names
    assert [label for label, _ in comparison.differing] == ["lr", "batch", "block", "optim", "dropout", "warmup",
                                                             "iters", "dtype"]
    assert comparison.differing[3] == ("optim", ["adamw", "muon"])
    long = ["a-name-far-longer-than-anything-a-legend-should-hold-" + n for n in ("one", "two")]
    labels = compare(long, [config("x"), config("y", lr=9e-4)]).labels
    assert labels == ["lr 3e-4", "lr 9e-4"]
    assert compare(long, [config("x"), config("y")]).labels == [n[:20] + "…" + n[-19:] for n in long]


def test_the_command_prints_a_short_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    names = _eight_apart(runs)
    out = tmp_path / "eight.png"
    assert main(["report", *names, "--runs_dir", str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == (f"wrote {out}: 2 runs, differing in 8 settings: lr, batch, block, optim, dropout, warmup, "
                       "iters, dtype\n")


def _cells(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


@pytest.mark.parametrize("columns", [80, 120])
def test_the_terminal_comparison_fits_and_names_its_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    runs = tmp_path / "runs"
    names = _eight_apart(runs, (*EIGHT, "a-third-run-with-a-rather-long-name-of-its-own-to-show", "d"))
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("LINES", "24")
    # a relative folder, as a user types it: the hint's --runs_dir is one word that no fold can break
    monkeypatch.chdir(tmp_path)
    assert main(["report", *names, "--runs_dir", "runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(_cells, lines)) <= columns, "\n".join(line for line in lines if _cells(line) > columns)

    from gptwiz.report.summary import differences, table
    from gptwiz.report.terminal import MARKERS, VAL_MARKERS

    report = load(names, runs)
    cells = [cell for t in (table(report.runs, report.comparison), differences(report.comparison))
             for r in t.rows for cell in r.cells[1:]]
    for cell in cells:  # every number and value whole on one line
        assert any(re.search(rf"(^|\s){re.escape(cell)}(\s|$)", line) for line in lines), cell
    plot = [line for line in lines if "│" in line]
    entries = [line for line in lines if line.startswith(f"{MARKERS[0]} {VAL_MARKERS[0]}")]
    assert entries, "no legend under the chart"
    legend = "\n".join(lines[lines.index(entries[0]):lines.index("settings that differ:")])
    for i, name in enumerate(report.comparison.names):
        line, val = MARKERS[i], VAL_MARKERS[i]
        assert f"{line} {val}  {name}" in legend, (name, legend)
        assert any(line in p or val in p for p in plot), f"run {name} not drawn"


def _figure_extents(names: list[str], runs: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from gptwiz.report.figure import Style, draw

    report = load(names, runs)
    fig = draw(report.runs, report.comparison, Style())
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return report, fig, canvas.get_renderer()


def _long_names_one_apart(runs: Path) -> list[str]:
    names = [f"an-experiment-with-a-long-name-number-{n}" for n in ("one", "two")]
    for name, lr in zip(names, (3e-4, 9e-4)):
        write_run(runs, name, lr=lr)
    return names


@pytest.mark.parametrize("case, settings", [("two apart in eight", 8), ("four", 8), ("labelled by lr", 1)])
def test_the_figure_keeps_its_legend_and_tables_inside(tmp_path: Path, case: str, settings: int) -> None:
    from gptwiz.report.summary import COLUMNS

    runs = tmp_path / "runs"
    names = (_long_names_one_apart(runs) if case == "labelled by lr" else
             _eight_apart(runs, (*EIGHT, "lr-twelve", "lr-eighteen") if case == "four" else EIGHT))
    report, fig, renderer = _figure_extents(names, runs)
    page = fig.bbox
    plots = [ax for ax in fig.axes if ax.get_lines()]
    assert len(plots) == 2
    for ax in plots:  # the panels keep a sane shape: neither strips nor towers
        box = ax.get_window_extent(renderer)
        assert 0.9 < box.width / box.height < 2.2, (box.width, box.height)
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    tables = [t for ax in fig.axes for t in ax.tables]
    boxes = [*(legend.get_window_extent(renderer) for legend in legends),
             *(t.get_window_extent(renderer) for t in tables)]
    for box in boxes:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (box, page)
        assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in plots)
    for i, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[i + 1:])
    assert len(legends) == 1 and [t.get_text() for t in legends[0].get_texts()] == report.comparison.labels
    for t in tables:  # every cell's text inside its cell: no column squeezed
        for cell in t.get_celld().values():
            text, frame = cell.get_text().get_window_extent(renderer), cell.get_window_extent(renderer)
            assert frame.x0 - 1 <= text.x0 and text.x1 <= frame.x1 + 1, cell.get_text().get_text()
    headers = {t[0, col].get_text().get_text() for t in tables for (row, col) in t.get_celld() if row == 0}
    differing = [label for label, _ in report.comparison.differing]
    assert set(COLUMNS) | set(differing) <= headers and len(differing) == settings
