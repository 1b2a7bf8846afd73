#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""series-cut.py [--selftests] FEATURE SRC DST: the component's sources, or
its selftests, as they are once the series has added FEATURE.

The component lands in three patches, one per feature, in this order:
move, promotion, compaction. rust-mm-cs614/mm/cs614/*.rs holds the final
sources, in which the lines a later feature adds are enclosed in marker
lines of their own:

    //@ promotion
    ...lines the promotion patch adds...
    //@ end

A block opened by "//@ before FEATURE" holds what that feature replaces: it
is kept only at the steps before it.

Each *.rs file of SRC is written to DST with the blocks of the features
after FEATURE removed and every marker line dropped; a file left empty does
not exist yet at that step (it is removed from DST). FEATURE "all" is the
last one: what 'make prepare' builds. Blank lines left around a removed block
are squeezed into one, as rustfmt would. Blocks nest: a line is kept when
every block around it is kept, so a whole file is one block.

With --selftests, SRC is the selftests directory, which lands in a patch
after each feature's: its Makefile has the same blocks, with "#@" markers,
around the programs each feature adds, and is written cut. Every other file
of SRC is written if the cut Makefile names it (by its name, or without
its extension for a program's source), or if the whole Makefile never
names it (the shared headers, config, settings): so each program comes
with the step that builds it. .gitignore keeps the lines of the programs
built at the step.
"""
import os
import re
import shutil
import sys

FEATURES = ["move", "promotion", "compaction"]


def cut(path, upto, marker="//@"):
    """Returns the text of path once the series has added FEATURES[upto]."""
    out, open_blocks = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            mark = line.strip()
            if mark.startswith(marker):
                words = mark[len(marker):].split()
                if words == ["end"] and open_blocks:
                    open_blocks.pop()
                elif len(words) == 1 and words[0] in FEATURES:
                    open_blocks.append(FEATURES.index(words[0]) <= upto)
                elif len(words) == 2 and words[0] == "before" and words[1] in FEATURES:
                    open_blocks.append(FEATURES.index(words[1]) > upto)
                else:
                    sys.exit(f"{path}:{n}: unexpected marker {mark!r}")
                continue
            if all(open_blocks):
                out.append(line)
    if open_blocks:
        sys.exit(f"{path}: a block is not closed")
    # The blank lines around a removed block, as rustfmt would leave them: one at most.
    text = re.sub(r"\n\n\n+", "\n\n", "".join(out))
    return text.rstrip("\n") + "\n" if text.strip() else ""


def component(upto, src, dst):
    """Writes the component's *.rs files of src to dst as FEATURES[upto] leaves them."""
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        if not name.endswith(".rs"):
            continue
        text, out = cut(os.path.join(src, name), upto), os.path.join(dst, name)
        if text.strip():
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
        elif os.path.exists(out):
            os.remove(out)


def names(text):
    """The words of a Makefile's text that may name a file."""
    return set(re.findall(r"[A-Za-z0-9_.+-]+", text))


def selftests(upto, src, dst):
    """Writes the selftests of src to dst as the patch after FEATURES[upto] leaves them."""
    makefile = os.path.join(src, "Makefile")
    named_ever = names(cut(makefile, len(FEATURES) - 1, "#@"))
    text = cut(makefile, upto, "#@")
    named_now = names(text)
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        path, out = os.path.join(src, name), os.path.join(dst, name)
        if name == "Makefile":
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
            continue
        if name == ".gitignore":
            # The programs built at this step, and what no step names.
            with open(path, encoding="utf-8") as f:
                lines = [line for line in f
                         if line.startswith("#") or line.strip() in named_now
                         or line.strip() not in named_ever]
            with open(out, "w", encoding="utf-8") as f:
                f.write("".join(lines))
            continue
        keys = {name, os.path.splitext(name)[0]}
        if keys & named_now or not keys & named_ever:
            shutil.copy2(path, out)
        elif os.path.exists(out):
            os.remove(out)


def main():
    args = sys.argv[1:]
    tests = args[:1] == ["--selftests"]
    if tests:
        args = args[1:]
    if len(args) != 3:
        sys.exit(__doc__)
    feature, src, dst = args
    if feature == "all":
        feature = FEATURES[-1]
    if feature not in FEATURES:
        sys.exit(f"unknown feature {feature!r}: one of {', '.join(FEATURES)} or all")
    (selftests if tests else component)(FEATURES.index(feature), src, dst)


main()
