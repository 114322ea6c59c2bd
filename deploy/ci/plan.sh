#!/bin/sh
# The plan of a pull request, for any CI: validate the branch, then write what
# merging it would change as Markdown, to post as a comment on the request.
#
#   deploy/ci/plan.sh [BASE]          # in a clone of the conf repo; BASE: origin/main
#
# Copy it into the conf repo (e.g. as ci/plan.sh) and run it on every pull
# request, with the base branch fetched. Environment:
#   GITOPS_MAIL   the command to run (default: gitops-mail)
#   PLAN_OUTPUT   where the Markdown goes (default: gitops-mail-plan.md)
#
# Exit 0 when the branch is valid, whether it changes anything or not (the
# plan says which); 1 when it is invalid or the plan could not be made.
#
# `gitops-mail plan` exits 0 for no change and 2 for changes. Older versions
# also exited 2 for a command line they could not parse (now 64, EX_USAGE):
# a 2 counts as "changes" only when a plan was written, so this script is
# right with either.
set -u

base=${1:-origin/main}
gm=${GITOPS_MAIL:-gitops-mail}
out=${PLAN_OUTPUT:-gitops-mail-plan.md}
err=$(mktemp)
trap 'rm -f "$err"' EXIT

echo "== gitops-mail validate"
# shellcheck disable=SC2086  # GITOPS_MAIL may be a command with arguments
if ! $gm validate; then
    echo "plan.sh: the branch does not validate: fix the problems above" >&2
    exit 1
fi

echo "== gitops-mail plan --base $base --format markdown > $out"
# shellcheck disable=SC2086
$gm plan --base "$base" --format markdown >"$out" 2>"$err"
code=$?
cat "$err" >&2
if [ "$code" -eq 2 ] && head -n 1 "$out" | grep -q '^### gitops-mail plan'; then
    echo "plan.sh: changes (the plan is in $out)"
elif [ "$code" -eq 0 ]; then
    echo "plan.sh: no changes"
else
    echo "plan.sh: gitops-mail plan failed (exit $code)" >&2
    exit 1
fi
cat "$out"
exit 0
