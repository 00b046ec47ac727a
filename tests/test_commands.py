"""Command lines folded for the screen: never mid-word, options with their values, pasteable back as one."""

from __future__ import annotations

import shlex

from gptwiz.common.commands import fold_command

COMMAND = ("gptwiz train --config_file small --model_name my_model --input_file 'my notes/a file.txt' "
           "--max_iters 5000 --batch_size 32 --block_size 256 --learning_rate 0.0003 --dropout 0.1")


def test_folded_lines_fit_and_paste_back_as_the_same_command() -> None:
    for width in (30, 50, 80, 200):
        lines = fold_command(COMMAND, width)
        # only a piece longer than a whole line (an option with its value) may run over, alone on its line
        over = [line for line in lines if len(line) > width]
        assert all(len(shlex.split(line.removesuffix(" \\"))) <= 2 for line in over), (width, lines)
        assert width < 80 or not over
        assert all(line.endswith(" \\") for line in lines[:-1]) and not lines[-1].endswith("\\")
        pasted = " ".join(line.removesuffix(" \\").strip() for line in lines)
        assert shlex.split(pasted) == shlex.split(COMMAND)


def test_an_option_keeps_its_value_and_a_short_command_stays_whole() -> None:
    lines = fold_command(COMMAND, 30)
    assert "  --input_file 'my notes/a file.txt' \\" in lines and lines[0].startswith("gptwiz train")
    assert fold_command("gptwiz runs", 80) == ["gptwiz runs"]


def test_a_word_longer_than_a_line_is_broken_where_a_shell_joins_it_again() -> None:
    import subprocess

    from gptwiz.common.commands import paste_lines

    command = ("gptwiz train --model_name x --input_file '/data/" + "a very long folder name/" * 5 + "notes.txt' "
               "--runs_dir /" + "r" * 90)
    rows = paste_lines(command, 40)
    assert all(len(row) <= 40 for row in rows), rows
    # the rows, pasted into sh, are the one command: printf shows the words it read
    words = subprocess.run(["sh", "-c", "printf '%s\\n' " + "\n".join(rows).removeprefix("gptwiz ")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert words == shlex.split(command)[1:]
