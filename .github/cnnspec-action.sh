#!/usr/bin/env bash
# The steps of cnnspec's composite action (action.yml), in one script that tests/test_diff.py runs too.
#
# Environment: CNNSPEC_PATHS   spec files or folders, separated by spaces (default: .)
#              CNNSPEC_DIFF    "false" to skip the diff on pull requests (default: true)
#              GITHUB_BASE_REF the pull request's base branch (GitHub sets it on pull_request events)
#              GITHUB_STEP_SUMMARY the job summary file the diff's Markdown is appended to
#
# 1. `cnnspec check --format github` on the paths: annotations for every diagnostic; its status
#    is the step's status.
# 2. On a pull request, `cnnspec diff` of each changed spec against the base branch: Markdown
#    into the job summary, notices on the changed lines. Differences do not fail the step.
set -uo pipefail

read -r -a paths <<< "${CNNSPEC_PATHS:-.}"
[ "${#paths[@]}" -gt 0 ] || paths=(.)
status=0
cnnspec check --format github "${paths[@]}" || status=$?

if [ -n "${GITHUB_BASE_REF:-}" ] && [ "${CNNSPEC_DIFF:-true}" != "false" ]; then
  base="origin/$GITHUB_BASE_REF"
  if ! git rev-parse --verify --quiet "$base^{commit}" > /dev/null; then
    git fetch --no-tags --quiet origin "+refs/heads/$GITHUB_BASE_REF:refs/remotes/$base" || status=2
  fi
  # the specs the pull request adds, changes or renames (since the merge base; the tip of the
  # base branch itself when a shallow clone lacks the merge base)
  changed=$(git diff --name-only --diff-filter=AMR "$base...HEAD" -- "${paths[@]}" 2> /dev/null \
            || git diff --name-only --diff-filter=AMR "$base" HEAD -- "${paths[@]}")
  summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
  while IFS= read -r f; do
    case "$f" in *.cnn) ;; *) continue ;; esac
    if ! git cat-file -e "$base:$f" 2> /dev/null; then
      printf '**cnnspec diff** `%s`: a new spec\n\n' "$f" >> "$summary"
      continue
    fi
    markdown=$(cnnspec diff "$base:$f" "$f" --format markdown 2> /dev/null)
    code=$?
    if [ "$code" -eq 2 ]; then
      status=2
    fi
    if [ -n "$markdown" ]; then
      printf '%s\n\n' "$markdown" >> "$summary"
      cnnspec diff "$base:$f" "$f" --format github
    else
      # a file of blocks only has no network to compare; a spec that does not check is annotated by step 1
      printf '**cnnspec diff** `%s`: not compared (blocks only, or a side does not check)\n\n' "$f" >> "$summary"
    fi
  done <<< "$changed"
fi
exit "$status"
