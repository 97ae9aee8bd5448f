#!/usr/bin/env bash
# Real projects' migration directories as they are (issue 10): for each, on a fresh database,
# `tidemark up` (every migration, timed), `drift` (must be clean), `down` of the newest
# migrations whose down scripts exist (back to the newest one that cannot be reverted), `up`
# again and `drift` again (clean). Prints a Markdown table; exits 1 when a step fails.
#
# The projects' files are not part of this repository: each is read at a pinned commit from a
# shallow fetch of its public repository (or from TIDEMARK_MIRRORS/OWNER+NAME/repo, a bare
# mirror). Not part of CI.
#
#   bench/real_projects.sh [PROJECT…]      # TM=target/release/tidemark to skip the build
set -euo pipefail
cd "$(dirname "$0")/.."

# name | repository | commit | dialect | path of the migrations in the repository | limits
# Limits, where the project's own files stop (said in the output):
#   to=V     lemmy needs PostgreSQL 16 from 2025-08-01-000016 on (a subquery in FROM without an
#            alias); on an older server the run stops before it.
#   down=N   crates.io's down script of 2024-10-25-112826 drops a constraint its up script never
#            made (PostgreSQL refuses it too), lemmy's of 2025-08-01-000012 renames a NOT NULL
#            constraint only PostgreSQL 18 names: only the newer ones are reverted.
# Not here: supabase/auth (its files are Go templates, `{{ index .Options "Namespace" }}`, not
# SQL), vaultwarden's MySQL directory (its application sets FOREIGN_KEY_CHECKS = 0 on the
# connection before it migrates: tables reference tables created later in the same file).
PROJECTS='
crates.io|rust-lang/crates.io|57fa000662f511321daa61e6769f190ea0e80771|postgres|migrations|down=50
lemmy|LemmyNet/lemmy|439734dd638a2c06a2f907beab7dcf4646e88f86|postgres|migrations|to=20250801000015,down=3
vaultwarden-postgres|dani-garcia/vaultwarden|46d71107f5094460dd5ecbe1dbac6e6c71e5189a|postgres|migrations/postgresql|
vaultwarden-sqlite|dani-garcia/vaultwarden|46d71107f5094460dd5ecbe1dbac6e6c71e5189a|sqlite|migrations/sqlite|
'
PG=${PG:-postgres://postgres@127.0.0.1:5432}
MY=${MY:-mysql://root@127.0.0.1:3306}
out=bench/out/real-projects
mkdir -p "$out/src"
if [ -z "${TM:-}" ]; then
    echo "building the release binary (cargo's progress below)…" >&2
    cargo build --release -p tidemark-cli
    TM=target/release/tidemark
fi
TM=$(realpath "$TM")
# The first drift of each project replays (cold cache), the second finds the replay cached.
rm -rf "$out/cache"
export TIDEMARK_BACKUP_DIR=$PWD/$out/backups TIDEMARK_CACHE_DIR=$PWD/$out/cache

# The repository's tree at the commit, extracted to $out/src/NAME.
fetch() { # name repo commit path
    local dst=$out/src/$1 git
    [ -d "$dst" ] && return 0
    if [ -n "${TIDEMARK_MIRRORS:-}" ] && [ -d "$TIDEMARK_MIRRORS/${2/\//+}/repo" ]; then
        git="git --git-dir=$TIDEMARK_MIRRORS/${2/\//+}/repo"
    else
        local bare=$out/git/${2/\//+}
        if [ ! -d "$bare" ]; then
            git init -q --bare "$bare"
            git --git-dir="$bare" fetch -q --depth 1 "https://github.com/$2" "$3"
        fi
        git="git --git-dir=$bare"
    fi
    mkdir -p "$dst"
    local rev=$3
    [ "$rev" = HEAD ] || $git cat-file -e "$rev^{commit}" 2>/dev/null || rev=FETCH_HEAD
    $git archive "$rev" "$4" | tar -x -C "$dst"
}

# Seconds of a command, its output kept in $out/last.log.
timed() {
    local a b
    a=$(date +%s.%N)
    if ! "$@" >"$out/last.log" 2>&1; then
        echo "FAILED: $*" >&2
        cat "$out/last.log" >&2
        return 1
    fi
    b=$(date +%s.%N)
    printf '%.2f' "$(echo "$b - $a" | bc)"
}

# How many of the newest migrations have a down script with a statement in it.
revertible() { # dir
    python3 - "$1" <<'PY'
import os, re, sys
d = sys.argv[1]
entries = []
for name in os.listdir(d):
    p = os.path.join(d, name)
    if os.path.isdir(p) and os.path.exists(os.path.join(p, "up.sql")):   # diesel
        down = os.path.join(p, "down.sql")
        entries.append((re.sub(r"\D", "", name.split("_")[0]), down))
    elif name.endswith(".up.sql"):                                        # native
        entries.append((name.split("_")[0], os.path.join(d, name[:-7] + ".down.sql")))
def has_sql(p):
    if not os.path.exists(p):
        return False
    text = re.sub(r"--[^\n]*|/\*.*?\*/", "", open(p, encoding="utf-8", errors="replace").read(), flags=re.S)
    return bool(text.strip(" \n\t;"))
n = 0
for _, down in sorted(entries, key=lambda e: e[0], reverse=True):
    if not has_sql(down):
        break
    n += 1
print(n)
PY
}

echo "| project | dialect | migrations | up | drift | down (newest N) | up again | drift again |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
status=0
while IFS='|' read -r name repo commit dialect path limits; do
    [ -n "$name" ] || continue
    if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
    fetch "$name" "$repo" "$commit" "$path"
    dir=$out/src/$name/$path
    db=tm_real_${name//[^a-z0-9]/_}
    case $dialect in
        postgres)
            psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" 2>/dev/null
            url=$PG/$db ;;
        mysql)
            mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
            url=$MY/$db ;;
        sqlite)
            rm -f "$out/$db.sqlite"*
            url=sqlite://$PWD/$out/$db.sqlite ;;
    esac
    tm() { "$TM" -q -d "$url" --dir "$dir" "$@"; }
    n=$("$TM" -d "$url" --dir "$dir" status --format json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["migrations"]))')
    k=$(revertible "$dir")
    to=()
    for l in ${limits//,/ }; do
        case $l in
            to=*) to=(--to "${l#to=}"); n="$n (to ${l#to=})" ;;
            down=*) k=${l#down=} ;;
        esac
    done
    row=$(
        up=$(timed tm up --no-backup "${to[@]}") &&
        drift=$(timed tm drift) &&
        down=$(timed tm down --steps "$k" --no-backup) &&
        up2=$(timed tm up --no-backup "${to[@]}") &&
        drift2=$(timed tm drift) &&
        echo "| $name | $dialect | $n | ${up} s | ${drift} s | ${down} s ($k) | ${up2} s | ${drift2} s |"
    ) || { row="| $name | $dialect | $n | failed: see above | | | | |"; status=1; }
    echo "$row"
done <<<"$PROJECTS"
echo
echo "tidemark $("$TM" --version | awk '{print $2, $3, $4}'); PostgreSQL $(psql -tA "$PG/postgres" -c 'SHOW server_version'); $(mariadb -h 127.0.0.1 -u root -N -e 'SELECT VERSION()')"
exit $status
