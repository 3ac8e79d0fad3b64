# Declared options of recipes/common/kd.sh and recipes/<corpus>/run.sh (sourced by both).
#
#   opt NAME DEFAULT HELP   declares the option --NAME: the variable NAME (dashes in the option,
#                           underscores in the variable) set to DEFAULT; HELP is its --help line
#   opt_alias OLD NAME      --OLD is an older name of the declared --NAME (kept for one release;
#                           using it sets NAME and says so on stderr)
#   opts_parse ARGS...      reads `--name value` and `--name=value` (the last one of a name wins);
#                           --help / -h calls the function named by opts_usage_fn (default: the
#                           caller's `usage`) and exits 0. An option not declared is an error
#                           naming it, unless opts_passthrough=1: then it is kept, with its
#                           value, in the array opts_rest (in order).
#   opts_usage              the declared options, each with its default and help line
#   opts_header FILE        FILE's header comment (its '#' lines from line 2 up to the first blank)
#
# A recipe's run.sh declares its own (corpus) options with `opt`, puts what it sets for the shared
# stages in the array kd_settings, calls `recipe_options "$@"`, runs its stage 0, then
#   ../common/kd.sh --recipe-title "..." "${kd_args[@]}"
#   recipe_options ARGS...  parses ARGS: the recipe's own options set its variables; every other
#                           option is for ../common/kd.sh: kd_args = kd_settings + those, in order
#                           (a later option wins, so the user's win over the recipe's). kd.sh
#                           checks them at once, so a wrong option stops the recipe before its
#                           stage 0, and its resolved values become variables here (stage,
#                           stop_stage, nj, data, exp, train_seed, ...: ../common/kd.sh --help).

_opts_names=(); _opts_defaults=(); _opts_help=(); _opts_aliases=()
opts_passthrough=0; opts_rest=(); opts_usage_fn=usage
kd_settings=(); kd_args=()

opt() {
  local name=${1//-/_}
  if ! [[ $name =~ ^[a-z][a-z0-9_]*$ ]]; then
    echo "${0##*/}: bad option name '$1'" >&2; exit 2
  fi
  _opts_names+=("$name"); _opts_defaults+=("$2"); _opts_help+=("$3")
  printf -v "$name" '%s' "$2"
}

opt_alias() { _opts_aliases+=("${1//-/_}=${2//-/_}"); }

_opts_renamed() {  # _opts_renamed NAME: the declared name of an older option name (else fails)
  local a
  for a in "${_opts_aliases[@]}"; do [ "${a%%=*}" = "$1" ] && { echo "${a#*=}"; return 0; }; done
  return 1
}

_opts_declared() {  # _opts_declared NAME: is NAME a declared option?
  local n
  for n in "${_opts_names[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

opts_parse() {
  local arg name value new
  while [ $# -gt 0 ]; do
    arg=$1
    case "$arg" in
      --help|-h) "$opts_usage_fn"; exit 0 ;;
      --*=*) name=${arg%%=*}; value=${arg#*=}; shift ;;
      --?*)
        if [ $# -lt 2 ]; then echo "$0: option $arg needs a value (see $0 --help)" >&2; exit 1; fi
        name=$arg; value=$2; shift 2 ;;
      *) echo "$0: unexpected argument '$arg' (options are --name value; see $0 --help)" >&2; exit 1 ;;
    esac
    name=${name#--}; name=${name//-/_}
    if new=$(_opts_renamed "$name"); then
      echo "$0: --${name//_/-} is now called --${new//_/-}" >&2; name=$new
    fi
    if _opts_declared "$name"; then
      printf -v "$name" '%s' "$value"
    elif [ "$opts_passthrough" = 1 ]; then
      opts_rest+=("--${name//_/-}" "$value")
    else
      echo "$0: unknown option --${name//_/-} (see $0 --help)" >&2; exit 1
    fi
  done
}

opts_usage() {
  local i default
  for i in "${!_opts_names[@]}"; do   # (a help line that names its default itself gets no other)
    default=" (default: ${_opts_defaults[i]:-none})"
    case "${_opts_help[i]}" in *default:*) default= ;; esac
    printf '  --%s%s\n      %s\n' "${_opts_names[i]//_/-}" "$default" "${_opts_help[i]}"
  done
}

opts_header() { sed -n '2,/^$/p' "$1" | sed 's/^# \{0,1\}//'; }

recipe_usage() {
  opts_header "$(basename "$0")"
  echo "Options of this recipe (--name value or --name=value):"
  opts_usage
  if [ "${#kd_settings[@]}" -gt 0 ]; then
    echo "This recipe passes ../common/kd.sh: ${kd_settings[*]} (options given here come later and win)"
  fi
  echo "Every other option goes to the shared stages 1-10: ../common/kd.sh --help lists them"
  echo "(--stage, --stop-stage, --nj, --config, --lm, --train-seed, --speed-perturb, --<stage>-args, ...)."
}

recipe_options() {
  local settings line name
  opts_passthrough=1; opts_usage_fn=recipe_usage
  opts_parse "$@"
  kd_args=("${kd_settings[@]}" "${opts_rest[@]}")
  if ! settings=$(../common/kd.sh --print-options "${kd_args[@]}"); then
    echo "$0: (the options that are not its own, see $0 --help, go to ../common/kd.sh)" >&2
    exit 1
  fi
  while IFS= read -r line; do
    name=${line%%=*}
    if _opts_declared "$name"; then
      echo "$0: the recipe option --${name//_/-} is also an option of ../common/kd.sh" >&2; exit 2
    fi
  done <<< "$settings"
  eval "$settings"
}
