#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# 'make rfc': write the series as an upstream RFC to out/rfc/.
#
# The RFC branch (cs614-rfc, in the worktree $CS614_WORK/rfc) is the base
# commit plus patches/series, with each overlay folded into the patch that
# wires it in: the Rust sources of mm/cs614/ into the three patches of the
# component, as each feature leaves them (scripts/series-cut.py: move with
# the patch adding cs614.o to its Makefile, then promotion, then
# compaction), the selftests in three steps, each after the code it tests
# (series-cut.py --selftests: those of the move into the patch adding them
# to the selftests' TARGETS, which follows the move; those of promotion in a
# commit after its patch; the rest in a commit after tools/mm/cs614-map,
# with the messages of scripts/rfc-selftests/), the documentation into the
# patch listing it in Documentation/mm/index.rst and
# Documentation/userspace-api/index.rst. Its tree must equal the prepared
# tree. Then git format-patch --rfc
# --cover-letter, the cover letter filled from scripts/rfc-cover.txt, and
# checkpatch --strict of every patch, run in the RFC tree.
#
# Recipients: each patch gets its own To/Cc headers from
# scripts/get_maintainer.pl run in the RFC tree on that patch, as git
# send-email --to-cmd/--cc-cmd would: To the maintainers of what it touches,
# Cc their reviewers and lists; every patch also Cc's the lists of the
# cs614 entry (so that each list has the whole thread), and a patch touching
# include/uapi/ linux-api@vger.kernel.org. The cover letter goes to all of
# them. out/rfc/recipients lists them for information.
#
# Evidence: the cover letter quotes the cs614 selftests of both flavours,
# mm's selftests with and without the series and the benchmarks, each of
# the tree the series is made from (lib.sh's tree_id, recorded next to the
# results by check.sh and check-mm.sh). Results that are missing, or of
# another tree, are made first with 'make check FLAVOUR=default', 'make
# check FLAVOUR=debug', 'make check-mm' or 'make bench' (a kernel build and
# a boot each: up to an hour or more in all); if that does not give passing
# results of this tree, no series is written.
#
# The series carries the git identity (user.name, user.email) of whoever runs
# it: author, Signed-off-by and the M: line of the MAINTAINERS entry. With no
# identity, or a placeholder one (a localhost, .invalid or example domain, as
# on CI), it is still written, but marked a dry run, not to be sent.
#
#   RFC_VERSION=N        the -vN of the series (default 1)
#   RFC_EVIDENCE=stale   for developers: quote existing results of another
#                        tree instead of making them again; the cover letter
#                        then says which results are not of this series, and
#                        that it is not to be sent
. "$(dirname "$0")/lib.sh"

base=$CS614_WORK/base
rfc=$CS614_WORK/rfc
out=$CS614_TOP/out/rfc
version=${RFC_VERSION:-1}
evidence=${RFC_EVIDENCE:-}
[ -f "$CS614_WORK/base.stamp" ] || die "no base source: run 'make fetch'"
case "$evidence" in
"" | stale) ;;
*) die "RFC_EVIDENCE=$evidence: the only value is 'stale'" ;;
esac

# The evidence the cover letter quotes, of the tree this series is made of:
# its tree id for each kind of result (the debug flavour's adds
# configs/debug.config; check-mm and the benchmarks use the default one).
declare -A want
want[default]=$(tree_id default)
want[debug]=$(tree_id debug)
want[mm]=${want[default]}
want[bench]=${want[default]}

# id_of ID_FILE RESULT_FILE...: the tree id recorded with a result, or
# 'none' if the result or its id is missing (a run that failed, or one of
# a single test, records no id).
id_of() {
	local f
	for f in "$@"; do
		[ -s "$f" ] || { echo none; return 0; }
	done
	head -n1 "$1"
}

# bench_names: the benchmarks the selftests build (cs614/*_bench).
bench_names() {
	local f
	for f in "$CS614_TOP"/selftests/*_bench.c; do
		f=${f##*/}
		echo "${f%.c}"
	done
}

# evidence_ids default|debug|mm|bench: the tree ids of every result that
# part of the cover letter quotes, one a line, sorted and unique.
evidence_ids() {
	local d f n w=$CS614_WORK
	case $1 in
	default | debug)
		d=$w/run-$1
		id_of "$d/tree-id" "$d/summary" "$d/tap.log"
		;;
	mm)
		for d in run-mm-default run-mm-stock; do
			id_of "$w/$d/tree-id" "$w/$d/mm-results"
		done
		id_of "$w/run-stock-cs614/tree-id" "$w/run-stock-cs614/summary"
		;;
	bench)
		# Every benchmark, and every log that is there (one of a removed
		# benchmark included: the cover letter would quote it).
		for n in $(bench_names); do
			id_of "$w/bench-default-$n.tree-id" "$w/bench-default-$n.log"
		done
		for f in "$w"/bench-default-*.log; do
			[ ! -f "$f" ] || id_of "${f%.log}.tree-id" "$f"
		done
		;;
	esac | sort -u
}

# evidence_state KIND: same (every result of this tree), other (all there,
# some of another tree) or missing.
evidence_state() {
	local ids
	ids=$(evidence_ids "$1")
	if [ -z "$ids" ] || grep -q -x none <<<"$ids"; then
		echo missing
	elif [ "$ids" = "${want[$1]}" ]; then
		echo same
	else
		echo other
	fi
}

# other_ids KIND: the tree ids of the results of KIND that are not this one.
other_ids() {
	evidence_ids "$1" | grep -v -x -F -e "${want[$1]}" | tr '\n' ' ' | sed 's/ $//'
}

# evidence KIND MAKE_ARGS...: make sure the results of KIND are of this
# tree, with 'make MAKE_ARGS' if they are not. With RFC_EVIDENCE=stale,
# results of another tree are kept, and named in the cover letter.
stale=()
evidence() {
	local kind=$1 state
	shift
	state=$(evidence_state "$kind")
	[ "$state" != same ] || return 0
	if [ "$state" = other ] && [ "$evidence" = stale ]; then
		log "RFC_EVIDENCE=stale: the $kind results are of another tree ($(other_ids "$kind")), not of this one (${want[$kind]})"
		stale+=("$kind")
		return 0
	fi
	if [ "$state" = other ]; then
		log "the $kind results are of another tree ($(other_ids "$kind")), not of this one (${want[$kind]}): make $*"
	else
		log "no $kind results of this tree (${want[$kind]}): make $*"
	fi
	# T, MM_TESTS or BENCH would make a partial run, which records no id.
	env -u T -u MM_TESTS -u BENCH make -C "$CS614_TOP" "$@" || log "make $* failed"
	state=$(evidence_state "$kind")
	[ "$state" = same ] ||
		die "'make $*' gave no passing results of this tree (${want[$kind]}): the series is not written"
}
evidence default check FLAVOUR=default
evidence debug check FLAVOUR=debug
evidence mm check-mm FLAVOUR=default
evidence bench bench FLAVOUR=default
# unchanged: the checkout is still what the results are of.
unchanged() {
	[ "$(tree_id default)" = "${want[default]}" ] && [ "$(tree_id debug)" = "${want[debug]}" ]
}
unchanged || die "the checkout changed while the results were made: run 'make rfc' again"

# other_tree KIND: for the cover letter, a plain statement that the results
# of KIND are not of this series, if they are not.
other_tree() {
	local k
	for k in "${stale[@]}"; do
		[ "$k" = "$1" ] || continue
		printf '  NOT OF THIS SERIES: these results are of another tree (cs614 tree\n'
		printf '  id %s), not of these patches (%s).\n' "$(other_ids "$1")" "${want[$1]}"
	done
}

# The patches' own placeholder identity, which the submitter's replaces.
SERIES_IDENT="cs614 developers <cs614@localhost>"
export GIT_AUTHOR_NAME="cs614 developers" GIT_AUTHOR_EMAIL=cs614@localhost
export GIT_COMMITTER_NAME="cs614 developers" GIT_COMMITTER_EMAIL=cs614@localhost
r() { git -C "$rfc" "$@"; }

RFC_NAME=$(git -C "$CS614_TOP" config user.name || true)
RFC_EMAIL=$(git -C "$CS614_TOP" config user.email || true)
dry_run=
case "${RFC_EMAIL,,}" in
"" | *@localhost | *@localhost.* | *.invalid | *@example.* | *.example | \
	*.example.com | *.example.org | *.example.net)
	dry_run=1 ;;
esac
[ -n "$RFC_NAME" ] || dry_run=1
if [ -z "$RFC_NAME" ] || [ -z "$RFC_EMAIL" ]; then
	RFC_NAME="cs614 RFC dry run"
	RFC_EMAIL=dry-run@localhost.invalid
fi
export RFC_NAME RFC_EMAIL

if [ ! -e "$rfc/.git" ]; then
	rm -rf "$rfc"
	git -C "$base" worktree prune
	git -C "$base" worktree add -q --detach "$rfc" cs614-base
fi
r am --abort >/dev/null 2>&1 || true
r checkout -q -f -B cs614-rfc cs614-base
r clean -q -fdx

# fold PATCH_FILE REGEX SOURCE DEST: if a line of the patch matches REGEX
# (the Makefile line that builds the overlay), copy SOURCE to DEST and amend
# the commit just applied.
fold() {
	local patch=$1 wired=$2 src=$3 dst=$4
	grep -q -e "$wired" "$patch" || return 0
	mkdir -p "$rfc/$(dirname "$dst")"
	cp -a "$src" "$rfc/$dst"
	r add -A -f "$dst"
	r commit -q --amend --no-edit
}

# fold_feature PATCH_FILE REGEX FEATURE: if a line of the patch matches REGEX
# (the patch of FEATURE of the component), write mm/cs614/*.rs as they are
# once FEATURE is added (scripts/series-cut.py) and amend the commit just
# applied.
fold_feature() {
	local patch=$1 wired=$2 feature=$3
	grep -q -e "$wired" "$patch" || return 0
	python3 "$CS614_TOP/scripts/series-cut.py" "$feature" \
		"$CS614_TOP/rust-mm-cs614/mm/cs614" "$rfc/mm/cs614"
	r add -A -f mm/cs614
	r commit -q --amend --no-edit
}

# selftests_cut FEATURE: write tools/testing/selftests/cs614 as the
# selftests' patch after FEATURE leaves it (scripts/series-cut.py
# --selftests: the programs its Makefile builds at that step).
selftests_cut() {
	python3 "$CS614_TOP/scripts/series-cut.py" --selftests "$1" "$CS614_TOP/selftests" \
		"$rfc/tools/testing/selftests/cs614"
	r add -A -f tools/testing/selftests/cs614
}

# fold_selftests PATCH_FILE REGEX: if a line of the patch matches REGEX
# (the patch adding cs614 to the selftests' TARGETS, right after the VMA
# move), fold in the selftests of the move and amend the commit just applied.
fold_selftests() {
	grep -q -e "$2" "$1" || return 0
	selftests_cut move
	r commit -q --amend --no-edit
}

# selftests_step PATCH_FILE REGEX FEATURE: if a line of the patch matches
# REGEX, add the selftests of FEATURE in a commit of their own after it,
# with the message scripts/rfc-selftests/FEATURE.txt and the patch's date.
selftests_step() {
	grep -q -e "$2" "$1" || return 0
	selftests_cut "$3"
	GIT_AUTHOR_DATE=$(r log -1 --format=%aD) GIT_COMMITTER_DATE=$(r log -1 --format=%cD) \
		r commit -q -F "$CS614_TOP/scripts/rfc-selftests/$3.txt"
}

patches=$(series_patches)
while read -r p; do
	r am -q "$p" || die "patch $(basename "$p") does not apply"
	fold_feature "$p" '^+obj-\$(CONFIG_CS614) += cs614\.o' move
	fold_feature "$p" '^Subject: \[PATCH\] mm/cs614: promote ' promotion
	selftests_step "$p" '^Subject: \[PATCH\] mm/cs614: promote ' promotion
	fold_feature "$p" '^Subject: \[PATCH\] mm/cs614: compact ' compaction
	fold "$p" '^+++ b/tools/mm/Makefile$' "$CS614_TOP/rust-mm-cs614/tools/mm/cs614-map" \
		tools/mm/cs614-map
	# The selftests of compaction, and of everything, test cs614-map too.
	selftests_step "$p" '^+++ b/tools/mm/Makefile$' compaction
	fold_selftests "$p" '^+++ b/tools/testing/selftests/Makefile$'
	fold "$p" '^+++ b/Documentation/mm/index.rst$' \
		"$CS614_TOP/rust-mm-cs614/Documentation/mm/cs614.rst" Documentation/mm/cs614.rst
	fold "$p" '^+++ b/Documentation/userspace-api/index.rst$' \
		"$CS614_TOP/rust-mm-cs614/Documentation/userspace-api/cs614.rst" \
		Documentation/userspace-api/cs614.rst
done <<<"$patches"

# Nothing of the overlays may be left out: same tree as 'make prepare' builds.
bash "$CS614_TOP/scripts/prepare.sh" >/dev/null
if ! git -C "$base" diff --quiet cs614-prepared cs614-rfc; then
	git -C "$base" diff --stat cs614-prepared cs614-rfc >&2
	die "the RFC branch differs from the prepared tree: an overlay file was not folded"
fi
# ... and made of what the results are of.
unchanged || die "the checkout changed while 'make rfc' ran: run it again"

# The submitter's identity: author and committer, Signed-off-by, and the
# MAINTAINERS entry's M: line (the only line in which the series may differ
# from the tested tree).
ident="$RFC_NAME <$RFC_EMAIL>"
export SERIES_IDENT ident
filters=$(mktemp -d)
trap 'rm -rf "$filters"' EXIT
cat >"$filters/replace.py" <<'EOF'
# replace.py PREFIX: copies stdin to stdout, PREFIX $SERIES_IDENT becoming PREFIX $ident.
import os, sys
prefix = sys.argv[1].replace("\\t", "\t")
sys.stdout.write(sys.stdin.read().replace(prefix + os.environ["SERIES_IDENT"] + "\n",
                                          prefix + os.environ["ident"] + "\n"))
EOF
cat >"$filters/maintainers.sh" <<'EOF'
git show "$GIT_COMMIT:MAINTAINERS" 2>/dev/null | grep -q -F -x "M:	$SERIES_IDENT" || exit 0
blob=$(git show "$GIT_COMMIT:MAINTAINERS" | python3 "$filters/replace.py" 'M:\t' |
	git hash-object -w --stdin)
git update-index --cacheinfo 100644,"$blob",MAINTAINERS
EOF
export filters
FILTER_BRANCH_SQUELCH_WARNING=1 r filter-branch -f \
	--env-filter 'export GIT_AUTHOR_NAME="$RFC_NAME" GIT_AUTHOR_EMAIL="$RFC_EMAIL"
		export GIT_COMMITTER_NAME="$RFC_NAME" GIT_COMMITTER_EMAIL="$RFC_EMAIL"' \
	--msg-filter 'python3 "$filters/replace.py" "Signed-off-by: "' \
	--index-filter 'bash "$filters/maintainers.sh"' \
	cs614-base..cs614-rfc >/dev/null

rm -rf "$out"
mkdir -p "$out"
in_root bash -c "cd '$rfc' && export GIT_COMMITTER_NAME=$(printf %q "$RFC_NAME") \
	GIT_COMMITTER_EMAIL=$(printf %q "$RFC_EMAIL") GIT_AUTHOR_NAME=$(printf %q "$RFC_NAME") \
	GIT_AUTHOR_EMAIL=$(printf %q "$RFC_EMAIL") && git format-patch -q --rfc --cover-letter -v$version \
	--from=$(printf %q "$ident") \
	--patience --base=cs614-base --no-signature -o '$out' cs614-base..cs614-rfc"

# Recipients of each patch, as git send-email --to-cmd/--cc-cmd would get
# them from scripts/get_maintainer.pl in the RFC tree (whose MAINTAINERS has
# the cs614 entry): To the maintainers (M:) of what the patch touches, Cc
# its reviewers (R:) and lists. Every patch also Cc's the lists of the
# cs614 entry, so that each list has the whole thread, and one touching a
# uapi header linux-api@vger.kernel.org, which MAINTAINERS does not name
# for include/uapi/ (Documentation/process/submitting-patches.rst asks for
# it on user-space API changes). The submitter is no recipient.
gm() {
	local res
	res=$(in_root /bin/sh -c 'cd "$1" && shift &&
		exec perl scripts/get_maintainer.pl --no-rolestats --no-git --no-git-fallback "$@"' \
		sh "$rfc" "$@") || die "scripts/get_maintainer.pl $* failed"
	grep -v -i -F -e "<$RFC_EMAIL>" <<<"$res" | grep -v -i -x -F -e "$RFC_EMAIL" -e '' || true
}
# uniq_addr: the addresses of stdin, each once, in order (case aside).
uniq_addr() { awk 'NF && !seen[tolower($0)]++'; }
# without ADDRS: the addresses of stdin that are not in ADDRS, each once.
without() {
	awk 'NR == FNR { seen[tolower($0)]; next }
		NF && !(tolower($0) in seen) { seen[tolower($0)]; print }' <(printf '%s\n' "$1") -
}
lists=$(gm --no-m --no-r -f mm/cs614/)
[ -n "$lists" ] || die "get_maintainer.pl names no list for mm/cs614/"
all_to="" all_cc=""
for p in "$out"/v"$version"-0*-*.patch; do
	case "$p" in *-0000-*) continue ;; esac
	to=$(gm --no-r --no-l "$p" | uniq_addr)
	cc=$(gm --no-m "$p")$'\n'$lists
	if grep -q -E '^(\+\+\+ b|--- a)/(arch/[^/]+/)?include/uapi/' "$p"; then
		cc+=$'\n'linux-api@vger.kernel.org
	fi
	# A message needs a To: the lists, if no maintainer is left.
	[ -n "$to" ] || to=$lists
	cc=$(without "$to" <<<"$cc")
	printf '%s\n' "$to" >"$filters/${p##*/}.to"
	printf '%s\n' "$cc" >"$filters/${p##*/}.cc"
	all_to+=$to$'\n'
	all_cc+=$cc$'\n'
done
# The cover letter goes to all of them.
all_to=$(uniq_addr <<<"$all_to")
all_cc=$(without "$all_to" <<<"$all_cc")
cover=$(ls "$out"/v"$version"-0000-*.patch)
printf '%s\n' "$all_to" >"$filters/${cover##*/}.to"
printf '%s\n' "$all_cc" >"$filters/${cover##*/}.cc"
printf '%s\n%s\n' "$all_to" "$all_cc" | sort -f -u >"$out/recipients"

# checkpatch --strict of every patch, in the RFC tree, as upstream runs it:
# all its checks on, those that read the tree included. What remains goes
# into the cover letter.
checkpatch=$out/checkpatch
: >"$checkpatch"
for p in "$out"/v"$version"-0*-*.patch; do
	case "$p" in *-0000-*) continue ;; esac
	res=$(in_root /bin/sh -c 'cd "$1" && shift && exec perl scripts/checkpatch.pl "$@"' \
		sh "$rfc" --strict -q --terse "$p" | grep -v '^total: ' | sed "s|^$out/||" || true)
	[ -z "$res" ] || printf '%s\n' "$res" >>"$checkpatch"
done

# The test results of both flavours, mm's selftests with and without the
# series, and the benchmark ratios: all of this tree (see 'evidence' above),
# unless RFC_EVIDENCE=stale kept some of another, which is then said.
results=""
for f in default debug; do
	read -r pass fail skip <"$CS614_WORK/run-$f/summary"
	results+="  $f: $pass passed, $fail failed, $skip skipped"$'\n'
	note=$(other_tree "$f")
	[ -z "$note" ] || results+=$note$'\n'
	results+=$(grep -E '^# # (PASSED|FAILED)|^(ok|not ok) [0-9]+ selftests' \
		"$CS614_WORK/run-$f/tap.log" | sed 's/^/    /')$'\n'
done
mm=$(other_tree mm)
[ -z "$mm" ] || mm+=$'\n'
mm+=$(while read -r t res; do
	res=${res% exit=*}
	other=$(grep "^$t " "$CS614_WORK/run-mm-stock/mm-results" | cut -d' ' -f2- | sed 's/ exit=.*//')
	if [ "$res" = "$other" ]; then
		printf '  %-22s %s (the same without)\n' "$t" "$res"
	else
		printf '  %-22s %s\n  %-22s %s (without)\n' "$t" "$res" "" "${other:-missing}"
	fi
done <"$CS614_WORK/run-mm-default/mm-results")
read -r pass fail skip <"$CS614_WORK/run-stock-cs614/summary"
mm+=$'\n\n'"  cs614 selftests without cs614: $pass passed, $fail failed, $skip skipped"
bench=$(other_tree bench)
[ -z "$bench" ] || bench+=$'\n'
bench+=$(for f in "$CS614_WORK"/bench-default-*.log; do
	[ -f "$f" ] || continue
	r=$(grep -E 'ratio|16 TiB|worst|median|freed at once|per THP|shrinkers after' "$f" | grep '^# ' |
		sed 's/^# /    /') || continue
	n=${f##*/bench-}
	printf '  %s:\n%s\n' "${n%.log}" "$r"
done)
if [ -s "$checkpatch" ]; then
	cp_text="checkpatch.pl --strict, run in the tree, reports the following.
'does MAINTAINERS need updating' is its question for every patch that
adds a file without touching MAINTAINERS: the entry, added with the
first file, lists them all already; 'volatile' is the selftests'
sig_atomic_t flag of a SIGSEGV handler,
which C requires to be volatile; BIT() does not exist in user space;
'spaces preferred around that *' is checkpatch reading the harness's
FIXTURE_DATA(name) *self as a multiplication; the remarks on
include/trace/events/cs614.h are checkpatch misreading the TRACE_EVENT()
and EM()/EMe() macros, as on every trace events header:"$'\n'$(sed 's/^/  /' "$checkpatch")
else
	cp_text="checkpatch.pl --strict: no warning on any patch."
fi
stamp=$(sed -n 2p "$CS614_WORK/base.stamp")
base_text="The series applies to Debian's linux-source-7.3 ($stamp),
the 7.3.y stable tree as Debian ships it; base-commit below names the
import of that tarball."

dry_note=""
if [ -n "$dry_run" ]; then
	dry_note="DRY RUN - NOT TO BE SENT: written with the identity '$ident', which is
unset or a placeholder (git config user.name / user.email). Run 'make rfc'
with your own identity to sign the series.

"
fi
if [ "${#stale[@]}" -gt 0 ]; then
	declare -A what=([default]="cs614 selftests (default)" [debug]="cs614 selftests (debug)"
		[mm]="mm selftests" [bench]="benchmark")
	kinds=""
	for k in "${stale[@]}"; do
		if [ "$k" = "${stale[-1]}" ] && [ -n "$kinds" ]; then
			kinds+=" and "
		elif [ -n "$kinds" ]; then
			kinds+=", "
		fi
		kinds+=${what[$k]}
	done
	dry_note+="STALE RESULTS - NOT TO BE SENT: the $kinds results below are
of another tree than these patches (RFC_EVIDENCE=stale). Run 'make rfc'
without RFC_EVIDENCE for results of this series.

"
fi
RESULTS=$results BENCH_TEXT=$bench MM_TEXT=$mm CP_TEXT=$cp_text BASE_TEXT=$base_text \
	DRY_NOTE=$dry_note python3 - "$cover" "$CS614_TOP/scripts/rfc-cover.txt" <<'EOF'
import os, sys
cover, template = sys.argv[1], sys.argv[2]
e = os.environ
t = open(template, encoding="utf-8").read()
t = t.replace("@RESULTS@", e["RESULTS"].rstrip())
t = t.replace("@BENCH@", e["BENCH_TEXT"].rstrip())
t = t.replace("@MM@", e["MM_TEXT"].rstrip())
t = t.replace("@CHECKPATCH@", e["CP_TEXT"] + "\n\n" + e["BASE_TEXT"])
subject, body = t.split("\n", 1)
s = open(cover, encoding="utf-8").read()
s = s.replace("*** SUBJECT HERE ***", subject)
s = s.replace("*** BLURB HERE ***", e["DRY_NOTE"] + body.strip())
open(cover, "w", encoding="utf-8").write(s)
EOF

# The To/Cc headers of each file, as git format-patch --to/--cc writes them.
python3 - "$filters" "$out"/v"$version"-0*-*.patch <<'EOF'
import os, sys
filters, patches = sys.argv[1], sys.argv[2:]
for path in patches:
    name = os.path.basename(path)
    hdr = ""
    for field in ("To", "Cc"):
        with open(os.path.join(filters, name + "." + field.lower()), encoding="utf-8") as f:
            addrs = [a for a in f.read().split("\n") if a]
        if addrs:
            hdr += field + ": " + ",\n    ".join(addrs) + "\n"
    # A patch is bytes: what is not UTF-8 in it passes through unchanged.
    s = open(path, encoding="utf-8", errors="surrogateescape").read()
    i = s.index("\nSubject: ")
    open(path, "w", encoding="utf-8", errors="surrogateescape").write(s[:i + 1] + hdr + s[i + 1:])
EOF

n=$(ls "$out"/v"$version"-0*-*.patch | wc -l)
log "RFC v$version: $((n - 1)) patches + cover letter in $out ($(wc -l <"$out/recipients") recipients, per patch)"
[ ! -s "$checkpatch" ] || log "checkpatch --strict: $(wc -l <"$checkpatch") remarks, listed in the cover letter"
log "signed by: $ident"
if [ -n "$dry_run" ]; then
	log "DRY RUN: the git identity is unset or a placeholder; the cover letter says so."
	log "Do not send this series; set user.name and user.email and run 'make rfc' again."
fi
if [ "${#stale[@]}" -gt 0 ]; then
	log "STALE RESULTS (RFC_EVIDENCE=stale): ${stale[*]} of another tree; the cover letter says so."
	log "Do not send this series; run 'make rfc' without RFC_EVIDENCE."
fi
