#!/bin/bash
# Says hello to each argument, then a little about where it ran.
for name in "$@"; do
    printf 'hello, %s\n' "$name"
done
echo "ran in $(pwd) as job $CLOUDPROTO_JOB_ID"
echo "a note on stderr" >&2
