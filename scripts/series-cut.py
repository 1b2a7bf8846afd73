#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""series-cut.py FEATURE SRC DST: the component's sources as they are once
the series has added FEATURE.

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
"""
import os
import re
import sys

FEATURES = ["move", "promotion", "compaction"]


def cut(path, upto):
    """Returns the text of path once the series has added FEATURES[upto]."""
    out, open_blocks = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            mark = line.strip()
            if mark.startswith("//@"):
                words = mark[3:].split()
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


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    feature, src, dst = sys.argv[1:]
    if feature == "all":
        feature = FEATURES[-1]
    if feature not in FEATURES:
        sys.exit(f"unknown feature {feature!r}: one of {', '.join(FEATURES)} or all")
    upto = FEATURES.index(feature)
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


main()
