#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# 'make rfc': write the series as an upstream RFC to out/rfc/.
#
# The RFC branch (cs614-rfc, in the worktree $CS614_WORK/rfc) is the base
# commit plus patches/series, with each overlay folded into the patch that
# wires it in: the Rust sources of mm/cs614/ into the three patches of the
# component, as each feature leaves them (scripts/series-cut.py: move with
# the patch adding cs614.o to its Makefile, then promotion, then
# compaction), the selftests into the patch adding them to the
# selftests' TARGETS, the documentation into the patch listing it in
# Documentation/mm/index.rst and Documentation/userspace-api/index.rst. Its tree must equal the prepared tree. Then git format-patch --rfc
# --cover-letter, with To/Cc from scripts/get_maintainer.pl, the cover letter
# filled from scripts/rfc-cover.txt, the latest test results and benchmark
# ratios, and checkpatch --strict of every patch.
#
# The series carries the git identity (user.name, user.email) of whoever runs
# it: author, Signed-off-by and the M: line of the MAINTAINERS entry. With no
# identity, or a placeholder one (a localhost, .invalid or example domain, as
# on CI), it is still written, but marked a dry run, not to be sent.
#
#   RFC_VERSION=N   the -vN of the series (default 1)
. "$(dirname "$0")/lib.sh"

base=$CS614_WORK/base
rfc=$CS614_WORK/rfc
out=$CS614_TOP/out/rfc
version=${RFC_VERSION:-1}
[ -f "$CS614_WORK/base.stamp" ] || die "no base source: run 'make fetch'"

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

patches=$(series_patches)
while read -r p; do
	r am -q "$p" || die "patch $(basename "$p") does not apply"
	fold_feature "$p" '^+obj-\$(CONFIG_CS614) += cs614\.o' move
	fold_feature "$p" '^Subject: \[PATCH\] mm/cs614: promote ' promotion
	fold_feature "$p" '^Subject: \[PATCH\] mm/cs614: compact ' compaction
	fold "$p" '^+++ b/tools/mm/Makefile$' "$CS614_TOP/rust-mm-cs614/tools/mm/cs614-map" \
		tools/mm/cs614-map
	fold "$p" '^+++ b/tools/testing/selftests/Makefile$' "$CS614_TOP/selftests/." \
		tools/testing/selftests/cs614
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

# Recipients: the maintainers and lists of everything the series touches.
in_root bash -c "cd '$rfc' && perl scripts/get_maintainer.pl --no-rolestats \
	--no-git --no-git-fallback --no-tree \$(ls $out/v$version-0*-*.patch | grep -v -- -0000-)" |
	grep -v -F -e "$ident" | grep -v -e '^$' | sort -u >"$out/recipients"
to=() cc=()
while read -r who; do
	case "$who" in
	*linux-mm@* | *rust-for-linux@*) to+=("$who") ;;
	*) cc+=("$who") ;;
	esac
done <"$out/recipients"

# checkpatch --strict of every patch; what remains goes into the cover letter.
checkpatch=$out/checkpatch
: >"$checkpatch"
for p in "$out"/v"$version"-0*-*.patch; do
	case "$p" in *-0000-*) continue ;; esac
	res=$(in_root perl "$rfc/scripts/checkpatch.pl" --strict --no-tree -q --terse "$p" |
		grep -v '^total: ' | sed "s|^$out/||" || true)
	[ -z "$res" ] || printf '%s\n' "$res" >>"$checkpatch"
done

# The latest test results of both flavours, and the benchmark ratios.
results=""
for f in default debug; do
	s=$CS614_WORK/run-$f/summary
	if [ -f "$s" ]; then
		read -r pass fail skip <"$s"
		results+="  $f: $pass passed, $fail failed, $skip skipped"$'\n'
		results+=$(grep -E '^# # (PASSED|FAILED)|^(ok|not ok) [0-9]+ selftests' \
			"$CS614_WORK/run-$f/tap.log" | sed 's/^/    /')$'\n'
	else
		results+="  $f: not run here yet ('make check FLAVOUR=$f')"$'\n'
	fi
done
mm=""
if [ -f "$CS614_WORK/run-mm-default/mm-results" ] && [ -f "$CS614_WORK/run-mm-stock/mm-results" ]; then
	mm=$(while read -r t res; do
		res=${res% exit=*}
		other=$(grep "^$t " "$CS614_WORK/run-mm-stock/mm-results" | cut -d' ' -f2- | sed 's/ exit=.*//')
		if [ "$res" = "$other" ]; then
			printf '  %-22s %s (the same without)\n' "$t" "$res"
		else
			printf '  %-22s %s\n  %-22s %s (without)\n' "$t" "$res" "" "${other:-missing}"
		fi
	done <"$CS614_WORK/run-mm-default/mm-results")
else
	mm="  not run here yet ('make check-mm')"
fi
if [ -f "$CS614_WORK/run-stock-cs614/summary" ]; then
	read -r pass fail skip <"$CS614_WORK/run-stock-cs614/summary"
	mm+=$'\n\n'"  cs614 selftests without cs614: $pass passed, $fail failed, $skip skipped"
fi
bench=$(for f in "$CS614_WORK"/bench-*.log; do
	[ -f "$f" ] || continue
	r=$(grep -E 'ratio|16 TiB|worst|median|freed at once' "$f" | grep '^# ' |
		sed 's/^# /    /') || continue
	n=${f##*/bench-}
	printf '  %s:\n%s\n' "${n%.log}" "$r"
done)
[ -n "$bench" ] || bench="  not run here yet ('make bench')"
if [ -s "$checkpatch" ]; then
	cp_text="checkpatch.pl --strict reports the following. 'does MAINTAINERS need
updating' precedes the MAINTAINERS patch, which comes last; 'volatile'
is the selftests' forced reads of probed memory, which must not be
optimised away; BIT_ULL() does not exist in user space; 'spaces
preferred around that *' is checkpatch reading the harness's
FIXTURE_DATA(name) *self as a multiplication; cs614-map is a script,
executable like tools/mm/thpmaps; the remarks on
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
cover=$(ls "$out"/v"$version"-0000-*.patch)
python3 - "$cover" "$CS614_TOP/scripts/rfc-cover.txt" <<EOF
import sys
cover, template = sys.argv[1], sys.argv[2]
t = open(template).read()
t = t.replace("@RESULTS@", """$results""".rstrip())
t = t.replace("@BENCH@", """$bench""".rstrip())
t = t.replace("@MM@", """$mm""".rstrip())
t = t.replace("@CHECKPATCH@", """$cp_text""" + "\n\n" + """$base_text""")
subject, body = t.split("\n", 1)
s = open(cover).read()
s = s.replace("*** SUBJECT HERE ***", subject)
s = s.replace("*** BLURB HERE ***", """$dry_note""" + body.strip() + "\n\nRecipients (scripts/get_maintainer.pl):\n" +
              "".join("  " + l for l in open("$out/recipients")))
open(cover, "w").write(s)
EOF

# To/Cc headers on every file, as git send-email would send them.
for p in "$out"/v"$version"-0*-*.patch; do
	hdr=""
	for w in "${to[@]}"; do hdr+="To: $w"$'\n'; done
	for w in "${cc[@]}"; do hdr+="Cc: $w"$'\n'; done
	python3 - "$p" "$hdr" <<'EOF'
import sys
path, hdr = sys.argv[1], sys.argv[2]
s = open(path).read()
i = s.index("\nSubject: ")
open(path, "w").write(s[:i + 1] + hdr + s[i + 1:])
EOF
done

n=$(ls "$out"/v"$version"-0*-*.patch | wc -l)
log "RFC v$version: $((n - 1)) patches + cover letter in $out ($(wc -l <"$out/recipients") recipients)"
[ ! -s "$checkpatch" ] || log "checkpatch --strict: $(wc -l <"$checkpatch") remarks, listed in the cover letter"
log "signed by: $ident"
if [ -n "$dry_run" ]; then
	log "DRY RUN: the git identity is unset or a placeholder; the cover letter says so."
	log "Do not send this series; set user.name and user.email and run 'make rfc' again."
fi
