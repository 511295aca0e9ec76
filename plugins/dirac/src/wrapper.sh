#!/bin/sh
# ganga-dirac-run.sh: runs a ganga job's program with its exact arguments.
# Every argument of this script is "x" followed by the hexadecimal bytes of one word; the
# first word is the program. DIRAC's JDL cannot carry quotes, semicolons, brackets, braces
# or line breaks, so ganga sends the command line of a job that holds any of them this way.
unhex() {
  printf '%s' "${1#x}" | awk '{
    digits = "0123456789abcdef"
    for (i = 1; i < length($0); i += 2) {
      hi = index(digits, substr($0, i, 1)) - 1
      lo = index(digits, substr($0, i + 1, 1)) - 1
      printf "\\%03o", hi * 16 + lo
    }
  }'
}
n=$#
for word do
  # printf turns the octal escapes into bytes; the x keeps trailing line breaks.
  value=$(printf "$(unhex "$word")x")
  set -- "$@" "${value%x}"
done
shift "$n"
exec "$@"
