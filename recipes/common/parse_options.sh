# Parse `--name value` options into shell variables of the same name (dashes -> underscores), for
# the helper scripts run from a recipe dir (ali_compare.sh, member_sweep.sh, student_seeds.sh; kd.sh
# and run.sh declare theirs with options.sh). Only variables already defined by the caller are
# accepted, so typos fail loudly.
# `--help` prints the caller's header comment (its lines starting with '#', up to the first blank).
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*=*) _po_name="${1%%=*}"; _po_value="${1#*=}"; shift ;;
    --*) _po_name="$1"; [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
         _po_value="$2"; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options are --name value; see --help)" >&2; exit 1 ;;
  esac
  _po_name="${_po_name#--}"; _po_name="${_po_name//-/_}"
  if [ -z "${!_po_name+set}" ] || [ "${_po_name#_po_}" != "$_po_name" ]; then
    echo "$0: unknown option --${_po_name//_/-} (see --help)" >&2; exit 1
  fi
  printf -v "$_po_name" '%s' "$_po_value"
done
unset _po_name _po_value
